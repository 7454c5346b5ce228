//! The generator proper: the entity block, then the event stream with its
//! interleaved duplicates and attribute changes.
//!
//! Lines are written into one reusable byte buffer that is handed to the writer
//! in large chunks. Per-entity state that later records must agree with (a user's
//! city and home store, a product's price) is kept in flat vectors indexed by
//! entity number.

use std::io::{self, Write};

use crate::clock::Clock;
use crate::json::{push_cents, push_i64, push_key, push_str, push_thousandths, push_u64, push_utf8};
use crate::model::*;
use crate::rng::{mix64, PowerLaw, Rng};
use crate::stream::{AtForm, Stream, UPDATE_PPM};
use crate::time::{push_padded, MS_PER_DAY};
use crate::{GenConfig, GenStats};

const NONE: u32 = u32::MAX;
const NO_CITY: u8 = u8::MAX;

const USER_KEY: (&str, usize) = ("u", 7);
const STORE_KEY: (&str, usize) = ("s", 4);
const PRODUCT_KEY: (&str, usize) = ("p", 6);

pub(crate) struct Generator {
    seed: u64,
    rng: Rng,
    out: Stream,
    /// Text being assembled before it is written as a JSON string (always UTF-8).
    scratch: Vec<u8>,

    users: u64,
    stores: u64,
    products: u64,
    user_pick: PowerLaw,
    store_pick: PowerLaw,
    product_pick: PowerLaw,

    user_city: Vec<u8>,
    user_home_store: Vec<u32>,
    user_last_product: Vec<u32>,
    product_category: Vec<u8>,
    /// Current price in cents; 0 = no price.
    product_price: Vec<u32>,
    stores_by_city: Vec<Vec<u32>>,

    next_id: [u64; 4],
}

impl Generator {
    pub(crate) fn new(config: &GenConfig) -> Self {
        let users = config.users;
        let stores = (users / 2000).max(5);
        let products = (users / 100).max(50);
        Generator {
            seed: config.seed,
            rng: Rng::new(config.seed, 1),
            out: Stream::new(),
            scratch: Vec::with_capacity(64),
            users,
            stores,
            products,
            // ~85% of picks follow the power law, the rest are uniform: a few
            // heavy users, and activity across the whole tail.
            user_pick: PowerLaw::new(users, 3, 150_000, true),
            store_pick: PowerLaw::new(stores, 2, 0, false),
            product_pick: PowerLaw::new(products, 3, 50_000, true),
            user_city: Vec::with_capacity(users as usize),
            user_home_store: Vec::with_capacity(users as usize),
            user_last_product: vec![NONE; users as usize],
            product_category: Vec::with_capacity(products as usize),
            product_price: Vec::with_capacity(products as usize),
            stores_by_city: vec![Vec::new(); CITIES.len()],
            next_id: [1; 4],
        }
    }

    pub(crate) fn run(mut self, config: &GenConfig, out: &mut impl Write) -> io::Result<GenStats> {
        let mut clock = Clock::new(config.end_ms, config.days, config.events);
        self.entities(clock.start_ms(), out)?;
        // Events draw from their own stream: the entity block does not change
        // with the number of events.
        self.rng = Rng::new(config.seed, 2);
        for i in 0..config.events {
            self.out.resend_due(i, out)?;
            let t = clock.time_of(i, &mut self.rng);
            self.event(t);
            self.out.end_line(out)?;
            if self.rng.chance_ppm(UPDATE_PPM) {
                self.attribute_update();
                self.out.stats.attribute_updates += 1;
                self.out.end_line(out)?;
            }
        }
        self.out.finish(out)
    }

    // ---------------------------------------------------------------- entities

    fn entities(&mut self, start_ms: i64, out: &mut impl Write) -> io::Result<()> {
        for s in 0..self.stores {
            self.store(s);
            self.out.stats.entity_records += 1;
            self.out.end_line(out)?;
        }
        for p in 0..self.products {
            self.product(p);
            self.out.stats.entity_records += 1;
            self.out.end_line(out)?;
        }
        for u in 0..self.users {
            self.user(u, start_ms);
            self.out.stats.entity_records += 1;
            self.out.end_line(out)?;
        }
        Ok(())
    }

    fn store(&mut self, s: u64) {
        let city = if (s as usize) < CITIES.len() { s as usize } else { self.rng.weighted(&CITY_WEIGHTS) };
        self.stores_by_city[city].push(s as u32);
        self.entity_head("store", STORE_KEY, s);
        self.out.buf.extend_from_slice(b",\"set\":{\"city\":");
        push_str(&mut self.out.buf, CITIES[city].0);
        match self.rng.below(100) {
            0..=7 => self.out.buf.extend_from_slice(b",\"region\":null"),
            8..=14 => {} // not given
            _ => {
                self.out.buf.extend_from_slice(b",\"region\":");
                push_str(&mut self.out.buf, CITIES[city].1);
            }
        }
        self.out.buf.extend_from_slice(b"}}");
    }

    fn product(&mut self, p: u64) {
        let category = self.rng.weighted(&CATEGORY_WEIGHTS);
        self.product_category.push(category as u8);
        let price = if self.rng.percent(7) { 0 } else { self.list_price(category) };
        self.product_price.push(price as u32);

        self.entity_head("product", PRODUCT_KEY, p);
        self.out.buf.extend_from_slice(b",\"set\":{\"category\":");
        push_str(&mut self.out.buf, CATEGORIES[category].name);
        if price > 0 {
            self.out.buf.extend_from_slice(b",\"price\":");
            let as_string = self.rng.percent(50);
            push_cents(&mut self.out.buf, price, as_string);
        } else if self.rng.percent(50) {
            self.out.buf.extend_from_slice(b",\"price\":null");
        }
        if !self.rng.percent(4) {
            let (lo, hi) = CATEGORIES[category].grams;
            let grams = self.rng.between(lo, hi);
            self.out.buf.extend_from_slice(b",\"weight_kg\":");
            push_thousandths(&mut self.out.buf, grams);
        }
        self.out.buf.extend_from_slice(b"}}");
    }

    /// A shelf price in cents for a product of `category`, ending in .00, .90,
    /// .99 or .50 like real price tags.
    fn list_price(&mut self, category: usize) -> u64 {
        let rung = self.rng.weighted(&PRICE_BUCKET_WEIGHTS) as i32 + CATEGORIES[category].price_shift;
        let (lo, hi) = PRICE_BUCKETS[rung.clamp(0, PRICE_BUCKETS.len() as i32 - 1) as usize];
        let yuan = self.rng.between(lo, hi) / 100;
        let cents = match self.rng.below(10) {
            0..=3 => yuan * 100,
            4..=5 => yuan * 100 - 10,
            6..=8 => yuan * 100 - 1,
            _ => yuan * 100 + 50,
        };
        cents.clamp(MIN_PRICE_CENTS, MAX_PRICE_CENTS)
    }

    fn user(&mut self, u: u64, start_ms: i64) {
        let city = if self.rng.percent(10) { NO_CITY } else { self.rng.weighted(&CITY_WEIGHTS) as u8 };
        let home = self.choose_home_store(city);
        self.user_city.push(city);
        self.user_home_store.push(home);

        self.entity_head("user", USER_KEY, u);
        self.out.buf.extend_from_slice(b",\"set\":{");
        let mut first = true;
        if !self.rng.percent(3) {
            self.scratch.clear();
            let surname = SURNAMES[self.rng.below(SURNAMES.len() as u64) as usize];
            let given = GIVEN_NAMES[self.rng.below(GIVEN_NAMES.len() as u64) as usize];
            if self.rng.percent(45) {
                self.scratch.extend_from_slice(surname.1.as_bytes());
                self.scratch.extend_from_slice(given.1.as_bytes());
            } else {
                self.scratch.extend_from_slice(surname.0.as_bytes());
                self.scratch.push(b' ');
                self.scratch.extend_from_slice(given.0.as_bytes());
            }
            self.out.buf.extend_from_slice(b"\"name\":");
            push_utf8(&mut self.out.buf, &self.scratch);
            first = false;
        }
        if !first {
            self.out.buf.push(b',');
        }
        self.out.buf.extend_from_slice(b"\"city\":");
        self.push_city(city);

        // Signed up some time in the three years before the data starts.
        let signup = start_ms - MS_PER_DAY - self.rng.below(3 * 365 * MS_PER_DAY as u64) as i64;
        self.out.buf.extend_from_slice(b",\"signup_at\":");
        if self.rng.percent(50) {
            self.out.push_timestamp(signup, true);
        } else {
            push_i64(&mut self.out.buf, signup);
        }

        self.out.buf.extend_from_slice(b",\"home_store\":");
        self.push_store(home);
        if !self.rng.percent(20) {
            // Peaks in the mid-1980s.
            let year = 1958 + self.rng.below(25) + self.rng.below(25);
            self.out.buf.extend_from_slice(b",\"birth_year\":");
            push_u64(&mut self.out.buf, year);
        }
        let vip = self.rng.percent(5);
        self.out.buf.extend_from_slice(if vip { b",\"vip\":true}}" } else { b",\"vip\":false}}" });
    }

    /// A home store for a user in `city`: usually one in that city, sometimes
    /// any store, and for about a quarter of users none (online only).
    fn choose_home_store(&mut self, city: u8) -> u32 {
        if self.rng.percent(28) {
            return NONE;
        }
        if city != NO_CITY && self.rng.percent(85) {
            let local = &self.stores_by_city[city as usize];
            if !local.is_empty() {
                return local[self.rng.below(local.len() as u64) as usize];
            }
        }
        self.store_pick.sample(&mut self.rng) as u32
    }

    // ------------------------------------------------------------------ events

    fn event(&mut self, t: i64) {
        let start = self.out.buf.len();
        let kind = self.rng.below(1000);
        let (at, form) = self.out.event_time(t, &mut self.rng);
        match kind {
            0..=699 => self.page_view(at, form),
            700..=849 => self.add_to_cart(at, form),
            850..=979 => self.order(at, form),
            _ => self.referral(at, form),
        }
        self.out.event_written(start, &mut self.rng);
    }

    fn event_head(&mut self, name: &str, kind: usize, id_prefix: &str, at: i64, form: AtForm) {
        self.out.buf.extend_from_slice(b"{\"event\":");
        push_str(&mut self.out.buf, name);
        self.out.buf.extend_from_slice(b",\"id\":");
        let id = self.next_id[kind];
        self.next_id[kind] += 1;
        push_key(&mut self.out.buf, id_prefix, id, 1);
        self.out.buf.extend_from_slice(b",\"at\":");
        self.out.push_at(at, form);
    }

    fn page_view(&mut self, at: i64, form: AtForm) {
        let u = self.user_pick.sample(&mut self.rng);
        let channel = self.channel_of(u);
        let product = if self.rng.percent(55) {
            let p = self.product_for(u, 30);
            self.user_last_product[u as usize] = p;
            Some(p)
        } else {
            None
        };
        self.event_head("page_view", 0, "pv-", at, form);
        self.out.buf.extend_from_slice(b",\"user\":");
        self.push_user(u);

        self.scratch.clear();
        match product {
            Some(p) => {
                let path = if channel == MINI_PROGRAM { "/pages/product/index?sku=" } else { "/p/" };
                self.scratch.extend_from_slice(path.as_bytes());
                self.scratch.extend_from_slice(PRODUCT_KEY.0.as_bytes());
                push_padded(&mut self.scratch, u64::from(p) + 1, PRODUCT_KEY.1);
            }
            None => {
                let page = OTHER_PAGES[self.rng.below(OTHER_PAGES.len() as u64) as usize];
                match page {
                    Some(path) => self.scratch.extend_from_slice(path.as_bytes()),
                    None => {
                        self.scratch.extend_from_slice(b"/c/");
                        let c = self.rng.weighted(&CATEGORY_WEIGHTS);
                        self.scratch.extend_from_slice(CATEGORIES[c].name.as_bytes());
                    }
                }
            }
        }
        self.out.buf.extend_from_slice(b",\"url\":");
        push_utf8(&mut self.out.buf, &self.scratch);
        self.out.buf.extend_from_slice(b",\"channel\":");
        push_str(&mut self.out.buf, CHANNELS[channel]);
        self.out.buf.extend_from_slice(b",\"product\":");
        match product {
            Some(p) => self.push_product(p),
            None => self.out.buf.extend_from_slice(b"null"),
        }
        self.out.buf.push(b'}');
    }

    fn add_to_cart(&mut self, at: i64, form: AtForm) {
        let u = self.user_pick.sample(&mut self.rng);
        let p = self.product_for(u, 60);
        self.user_last_product[u as usize] = p;
        let quantity = 1 + self.rng.weighted(&[70, 18, 7, 3, 2]) as u64;
        self.event_head("add_to_cart", 1, "c-", at, form);
        self.out.buf.extend_from_slice(b",\"user\":");
        self.push_user(u);
        self.out.buf.extend_from_slice(b",\"product\":");
        self.push_product(p);
        self.out.buf.extend_from_slice(b",\"quantity\":");
        push_u64(&mut self.out.buf, quantity);
        self.out.buf.push(b'}');
    }

    fn order(&mut self, at: i64, form: AtForm) {
        let u = self.user_pick.sample(&mut self.rng);
        let p = self.product_for(u, 50);
        // ~60% online (no store); in-store orders mostly at the home store.
        let store = if self.rng.percent(60) {
            NONE
        } else {
            let home = self.user_home_store[u as usize];
            if home != NONE && self.rng.percent(70) {
                home
            } else {
                self.store_pick.sample(&mut self.rng) as u32
            }
        };
        let mut quantity = 1 + self.rng.weighted(&[78, 14, 5, 2, 1]) as u64;
        let unit = match self.product_price[p as usize] {
            0 => self.list_price(self.product_category[p as usize] as usize),
            price => u64::from(price),
        };
        let discount = [100, 95, 90, 85, 80, 70][self.rng.weighted(&[65, 10, 10, 6, 6, 3])];
        while quantity > 1 && unit * quantity > MAX_AMOUNT_CENTS {
            quantity -= 1;
        }
        let amount = ((unit * quantity * discount + 50) / 100).clamp(MIN_AMOUNT_CENTS, MAX_AMOUNT_CENTS);

        self.event_head("order", 2, "o-", at, form);
        self.out.buf.extend_from_slice(b",\"user\":");
        self.push_user(u);
        self.out.buf.extend_from_slice(b",\"store\":");
        self.push_store(store);
        self.out.buf.extend_from_slice(b",\"product\":");
        self.push_product(p);
        self.out.buf.extend_from_slice(b",\"amount\":");
        let as_string = self.rng.percent(30);
        push_cents(&mut self.out.buf, amount, as_string);
        self.out.buf.extend_from_slice(b",\"quantity\":");
        push_u64(&mut self.out.buf, quantity);
        self.out.buf.push(b'}');
    }

    fn referral(&mut self, at: i64, form: AtForm) {
        let referrer = self.user_pick.sample(&mut self.rng);
        let mut referee = self.rng.below(self.users);
        if referee == referrer {
            referee = (referee + 1) % self.users;
        }
        self.event_head("referral", 3, "r-", at, form);
        self.out.buf.extend_from_slice(b",\"referrer\":");
        self.push_user(referrer);
        self.out.buf.extend_from_slice(b",\"referee\":");
        self.push_user(referee);
        self.out.buf.push(b'}');
    }

    /// Each user has a favourite channel (a pure function of seed and user), used
    /// for about two thirds of their page views.
    fn channel_of(&mut self, u: u64) -> usize {
        if self.rng.percent(65) {
            let h = mix64(self.seed ^ u.wrapping_mul(0xA24B_AED4_963E_E407));
            let total: u64 = CHANNEL_WEIGHTS.iter().map(|&w| u64::from(w)).sum();
            let mut r = h % total;
            for (i, &w) in CHANNEL_WEIGHTS.iter().enumerate() {
                if r < u64::from(w) {
                    return i;
                }
                r -= u64::from(w);
            }
        }
        self.rng.weighted(&CHANNEL_WEIGHTS)
    }

    /// The product a user acts on: with `stick_percent` chance the one they last
    /// looked at (view -> cart -> order funnels), else a popular-skewed pick.
    fn product_for(&mut self, u: u64, stick_percent: u64) -> u32 {
        let last = self.user_last_product[u as usize];
        if last != NONE && self.rng.percent(stick_percent) {
            last
        } else {
            self.product_pick.sample(&mut self.rng) as u32
        }
    }

    // ------------------------------------------------------- attribute changes

    fn attribute_update(&mut self) {
        match self.rng.below(1000) {
            0..=299 => {
                // A user moves: new city, and sometimes a new home store there.
                let u = self.user_pick.sample(&mut self.rng);
                let city = self.rng.weighted(&CITY_WEIGHTS) as u8;
                self.user_city[u as usize] = city;
                self.entity_head("user", USER_KEY, u);
                self.out.buf.extend_from_slice(b",\"set\":{\"city\":");
                self.push_city(city);
                if self.rng.percent(40) {
                    let home = self.choose_home_store(city);
                    self.user_home_store[u as usize] = home;
                    self.out.buf.extend_from_slice(b",\"home_store\":");
                    self.push_store(home);
                }
                self.out.buf.extend_from_slice(b"}}");
            }
            300..=499 => {
                let u = self.user_pick.sample(&mut self.rng);
                let home = self.choose_home_store(self.user_city[u as usize]);
                self.user_home_store[u as usize] = home;
                self.entity_head("user", USER_KEY, u);
                self.out.buf.extend_from_slice(b",\"set\":{\"home_store\":");
                self.push_store(home);
                self.out.buf.extend_from_slice(b"}}");
            }
            500..=579 => {
                let u = self.user_pick.sample(&mut self.rng);
                self.user_city[u as usize] = NO_CITY;
                self.entity_head("user", USER_KEY, u);
                self.out.buf.extend_from_slice(b",\"unset\":[\"city\"]}");
            }
            580..=599 => {
                let u = self.user_pick.sample(&mut self.rng);
                let vip = self.rng.percent(80);
                self.entity_head("user", USER_KEY, u);
                self.out.buf.extend_from_slice(if vip {
                    b",\"set\":{\"vip\":true}}"
                } else {
                    b",\"set\":{\"vip\":false}}"
                });
            }
            600..=619 => {
                // Account deletion, mostly of quiet users. Events that still name
                // the user later re-create the instance with no attributes.
                let u = self.rng.below(self.users);
                self.user_city[u as usize] = NO_CITY;
                self.user_home_store[u as usize] = NONE;
                self.user_last_product[u as usize] = NONE;
                self.entity_head("user", USER_KEY, u);
                self.out.buf.extend_from_slice(b",\"delete\":true}");
            }
            620..=849 => {
                // Repricing: a sale, a price rise, or the price withdrawn.
                let p = self.product_pick.sample(&mut self.rng);
                let old = u64::from(self.product_price[p as usize]);
                let price = if self.rng.percent(10) {
                    0
                } else if old == 0 {
                    self.list_price(self.product_category[p as usize] as usize)
                } else {
                    let percent = [70, 80, 85, 90, 110, 120][self.rng.below(6) as usize];
                    (old * percent / 100 / 10 * 10).clamp(MIN_PRICE_CENTS, MAX_PRICE_CENTS)
                };
                self.product_price[p as usize] = price as u32;
                self.entity_head("product", PRODUCT_KEY, p);
                self.out.buf.extend_from_slice(b",\"set\":{\"price\":");
                if price == 0 {
                    self.out.buf.extend_from_slice(b"null");
                } else {
                    let as_string = self.rng.percent(50);
                    push_cents(&mut self.out.buf, price, as_string);
                }
                self.out.buf.extend_from_slice(b"}}");
            }
            _ => {
                let p = self.product_pick.sample(&mut self.rng);
                let category = self.rng.weighted(&CATEGORY_WEIGHTS);
                self.product_category[p as usize] = category as u8;
                self.entity_head("product", PRODUCT_KEY, p);
                self.out.buf.extend_from_slice(b",\"set\":{\"category\":");
                push_str(&mut self.out.buf, CATEGORIES[category].name);
                self.out.buf.extend_from_slice(b"}}");
            }
        }
    }

    // ----------------------------------------------------------------- pieces

    fn entity_head(&mut self, entity: &str, key: (&str, usize), n: u64) {
        self.out.buf.extend_from_slice(b"{\"entity\":");
        push_str(&mut self.out.buf, entity);
        self.out.buf.extend_from_slice(b",\"id\":");
        push_key(&mut self.out.buf, key.0, n + 1, key.1);
    }

    fn push_user(&mut self, u: u64) {
        push_key(&mut self.out.buf, USER_KEY.0, u + 1, USER_KEY.1);
    }

    fn push_product(&mut self, p: u32) {
        push_key(&mut self.out.buf, PRODUCT_KEY.0, u64::from(p) + 1, PRODUCT_KEY.1);
    }

    fn push_store(&mut self, s: u32) {
        if s == NONE {
            self.out.buf.extend_from_slice(b"null");
        } else {
            push_key(&mut self.out.buf, STORE_KEY.0, u64::from(s) + 1, STORE_KEY.1);
        }
    }

    fn push_city(&mut self, city: u8) {
        if city == NO_CITY {
            self.out.buf.extend_from_slice(b"null");
        } else {
            push_str(&mut self.out.buf, CITIES[city as usize].0);
        }
    }
}
