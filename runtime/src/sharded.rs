//! Tables split by hash into shards that grow one at a time, for state that
//! grows with the events: the engine's event ids and keys (`ids`,
//! `intern`), and a worker's `count_distinct` pairs (`pairs`).
//!
//! A single table doubles all at once: at a million entries it allocates
//! tens of megabytes, faults each page in and rehashes every entry, in the
//! middle of one batch. Under a steady 100k events/s the `count_distinct`
//! pairs of the retail example grew through such doublings every few
//! seconds, each holding its batch (and those queued behind it) for
//! 100–200 ms. Shards of equal shares do not help much: they reach their
//! growth points together (the engine's 64 id tables all grew within ~200
//! ms of one another at 1.6M ids, which put p99 at 60–80 ms). So the shares
//! are unequal: shard `i` takes a share in proportion to 2^(i/SHARDS), the
//! largest twice the smallest. Every shard doubles once as the whole
//! doubles, and their doublings are spread evenly over that time, each
//! copying about a `SHARDS`th of the whole.

/// How many tables a sharded table has.
pub(crate) const SHARDS: usize = 64;

/// The shard of a hash: bits 32 to 43 of it, through `STAGGER`. (Not the
/// lowest bits, which place an entry in its table.)
pub(crate) fn shard(hash: u64) -> usize {
    STAGGER[(hash >> 32) as usize % STAGGER_STEPS] as usize
}

const STAGGER_STEPS: usize = 4096;

// `stagger`'s constants (2^(1/64), the shift of a step, shards in a byte)
// are for these.
const _: () = assert!(SHARDS == 64 && STAGGER_STEPS == 4096);

/// Per step `j` of a hash's 12 bits, its shard: the `i` with 2^(i/64) - 1 <=
/// (j + 1/2) / 4096 < 2^((i+1)/64) - 1, so shard `i` takes steps in
/// proportion to 2^(i/64) (from 45 steps to 88).
static STAGGER: [u8; STAGGER_STEPS] = stagger();

const fn stagger() -> [u8; STAGGER_STEPS] {
    // 2^(i/64) in 32-bit fixed point, by repeated multiplication by
    // 2^(1/64) (4341736423 / 2^32); `bounds[i]` is where shard i begins.
    const ROOT: u128 = 4_341_736_423;
    let mut bounds = [0u64; SHARDS];
    let mut power: u128 = 1 << 32;
    let mut i = 0;
    while i < SHARDS {
        bounds[i] = (power - (1 << 32)) as u64;
        power = (power * ROOT) >> 32;
        i += 1;
    }
    let mut table = [0u8; STAGGER_STEPS];
    let mut j = 0;
    let mut at = 0;
    while j < STAGGER_STEPS {
        // The middle of step j, as a fraction of 2^32.
        let u = ((2 * j as u64) + 1) << 19;
        while at + 1 < SHARDS && bounds[at + 1] <= u {
            at += 1;
        }
        table[j] = at as u8;
        j += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::{shard, SHARDS, STAGGER, STAGGER_STEPS};

    #[test]
    fn shard_i_takes_a_share_in_proportion_to_2_to_the_i_over_64() {
        let mut steps = [0usize; SHARDS];
        for &shard in STAGGER.iter() {
            steps[shard as usize] += 1;
        }
        assert_eq!(steps.iter().sum::<usize>(), STAGGER_STEPS);
        for (i, &n) in steps.iter().enumerate() {
            let expected = STAGGER_STEPS as f64 * (((i + 1) as f64 / 64.0).exp2() - (i as f64 / 64.0).exp2());
            assert!((n as f64 - expected).abs() <= 1.0, "shard {i}: {n} steps, expected {expected:.1}");
        }
        assert!(STAGGER.windows(2).all(|w| w[0] <= w[1]), "shards in order of the steps");
    }

    /// The shard is read from bits 32 to 43 alone: the low bits place an
    /// entry within its table (had the shard taken them, every table's
    /// entries would crowd into a 64th of its slots).
    #[test]
    fn the_shard_is_read_from_bits_32_to_43() {
        let mut h = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            assert_eq!(shard(h), shard(h & (0xFFF << 32)), "{h:#x}");
        }
        let mut seen = [false; SHARDS];
        for step in 0..STAGGER_STEPS as u64 {
            seen[shard(step << 32)] = true;
        }
        assert!(seen.iter().all(|&s| s), "every shard is some hash's");
    }
}
