//! The random source: xoshiro256** seeded through splitmix64, plus a skewed
//! (power-law) picker.
//!
//! Everything here uses integer arithmetic or the IEEE basic operations
//! (`+ - * /`, which are correctly rounded everywhere), never `ln`/`exp`/`powf`
//! from the platform's libm, so a seed produces the same numbers on every
//! platform and Rust version.

/// One step of splitmix64: advances `state` and returns a well-mixed value.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// A stateless 64-bit mixer (the splitmix64 finaliser).
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256**: small, fast, and good enough for synthetic data.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for one independent `stream` of a `seed`, so that, for example,
    /// the entity block does not change when only the number of events does.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut state = seed ^ mix64(stream.wrapping_add(0x5EC_F10A));
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut state);
        }
        Rng { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` without modulo bias (multiply-and-reject). `n` must be > 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            // The low word fell into the biased zone candidate range; reject exactly
            // the values that would over-represent some outputs.
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// `true` with probability `per_million / 1_000_000`.
    pub(crate) fn chance_ppm(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }

    /// `true` with probability `percent / 100`.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An index into `weights`, chosen with probability proportional to its weight.
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            let w = u64::from(w);
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }
}

/// Picks one of `n` items with a Zipf-like skew: a few items get a large share,
/// and a long tail gets a little each.
///
/// Rank `r` (0-based) has probability close to `∝ (r + 1)^-(1 - 1/k)`, drawn in O(1)
/// by inverting the continuous distribution: `x = (1 + u·((n+1)^(1/k) - 1))^k`,
/// `rank = ⌊x⌋ - 1`. A share of the picks (`uniform_ppm`) is uniform instead, so
/// every item sees some activity. Ranks are then permuted by an affine bijection
/// mod `n`, so the most active item is not always the first key.
#[derive(Debug, Clone)]
pub(crate) struct PowerLaw {
    n: u64,
    k: u32,
    /// `(n + 1)^(1/k) - 1`.
    span: f64,
    uniform_ppm: u64,
    mult: u64,
    offset: u64,
}

impl PowerLaw {
    pub(crate) fn new(n: u64, k: u32, uniform_ppm: u64, permute: bool) -> Self {
        assert!(n > 0 && k > 0);
        let span = kth_root((n + 1) as f64, k) - 1.0;
        let (mult, offset) = if permute && n > 2 {
            // Any multiplier coprime to n gives a bijection; start near n/φ.
            let mut mult = ((n as f64 * 0.618_033_988_749_895) as u64).max(1);
            while gcd(mult, n) != 1 {
                mult += 1;
            }
            (mult, n / 3)
        } else {
            (1, 0)
        };
        PowerLaw { n, k, span, uniform_ppm, mult, offset }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> u64 {
        if self.uniform_ppm > 0 && rng.chance_ppm(self.uniform_ppm) {
            return rng.below(self.n);
        }
        let base = 1.0 + rng.unit() * self.span;
        let mut x = base;
        for _ in 1..self.k {
            x *= base;
        }
        let rank = (x as u64).saturating_sub(1).min(self.n - 1);
        self.item_of_rank(rank)
    }

    /// The item at popularity rank `rank` (0 = the most popular).
    pub(crate) fn item_of_rank(&self, rank: u64) -> u64 {
        ((u128::from(rank) * u128::from(self.mult) + u128::from(self.offset)) % u128::from(self.n)) as u64
    }
}

/// `v^(1/k)` by bisection, using only comparisons and multiplications so the
/// result is the same on every platform.
fn kth_root(v: f64, k: u32) -> f64 {
    let (mut lo, mut hi) = (1.0_f64, v.max(1.0));
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        let mut p = mid;
        for _ in 1..k {
            p *= mid;
        }
        if p <= v {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(1, 0);
        let mut seen = [0u32; 7];
        for _ in 0..70_000 {
            seen[rng.below(7) as usize] += 1;
        }
        for count in seen {
            assert!((9_000..11_000).contains(&count), "{seen:?}");
        }
        for _ in 0..1000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn kth_root_is_accurate() {
        assert!((kth_root(1000.0, 3) - 10.0).abs() < 1e-9);
        assert!((kth_root(16.0, 4) - 2.0).abs() < 1e-12);
        assert_eq!(kth_root(5.0, 1), 5.0);
    }

    #[test]
    fn power_law_is_skewed_and_a_bijection() {
        let n = 1000;
        let law = PowerLaw::new(n, 3, 0, true);
        let mut image: Vec<u64> = (0..n).map(|r| law.item_of_rank(r)).collect();
        image.sort_unstable();
        assert_eq!(image, (0..n).collect::<Vec<_>>());

        let mut rng = Rng::new(3, 0);
        let mut counts = vec![0u32; n as usize];
        for _ in 0..100_000 {
            counts[law.sample(&mut rng) as usize] += 1;
        }
        let top = counts[law.item_of_rank(0) as usize];
        let tail = counts[law.item_of_rank(n - 1) as usize];
        assert!(top > 10 * tail.max(1), "top {top}, tail {tail}");
        let mut sorted = counts.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top_decile: u32 = sorted[..100].iter().sum();
        assert!(top_decile > 35_000, "top 10% share {top_decile}");
    }
}
