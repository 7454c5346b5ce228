//! The vocabulary of the synthetic retail world: cities, categories, names,
//! channels and pages, each with the weight it is drawn with.

/// `(city, region, weight)`. The first cities are the biggest markets; the first
/// stores are placed one per city in this order.
pub(crate) const CITIES: [(&str, &str, u32); 12] = [
    ("Shanghai", "East China", 16),
    ("Beijing", "North China", 14),
    ("Shenzhen", "South China", 10),
    ("Guangzhou", "South China", 10),
    ("Hangzhou", "East China", 8),
    ("Chengdu", "Southwest China", 8),
    ("Wuhan", "Central China", 7),
    ("Nanjing", "East China", 6),
    ("Chongqing", "Southwest China", 6),
    ("Xi'an", "Northwest China", 5),
    ("Suzhou", "East China", 5),
    ("Tianjin", "North China", 5),
];

pub(crate) const CITY_WEIGHTS: [u32; 12] = {
    let mut w = [0; 12];
    let mut i = 0;
    while i < 12 {
        w[i] = CITIES[i].2;
        i += 1;
    }
    w
};

/// A product category: how often it occurs, how its prices sit relative to the
/// store-wide price ladder (in steps of [`PRICE_BUCKETS`]), and its weight range in grams.
pub(crate) struct Category {
    pub(crate) name: &'static str,
    pub(crate) weight: u32,
    pub(crate) price_shift: i32,
    pub(crate) grams: (u64, u64),
}

pub(crate) const CATEGORIES: [Category; 10] = [
    Category { name: "apparel", weight: 18, price_shift: 0, grams: (100, 1_200) },
    Category { name: "grocery", weight: 16, price_shift: -1, grams: (100, 5_000) },
    Category { name: "shoes", weight: 12, price_shift: 1, grams: (350, 1_800) },
    Category { name: "beauty", weight: 12, price_shift: 0, grams: (30, 600) },
    Category { name: "electronics", weight: 10, price_shift: 2, grams: (50, 8_000) },
    Category { name: "home", weight: 10, price_shift: 0, grams: (200, 15_000) },
    Category { name: "sports", weight: 7, price_shift: 1, grams: (100, 12_000) },
    Category { name: "toys", weight: 6, price_shift: 0, grams: (50, 3_000) },
    Category { name: "books", weight: 5, price_shift: -1, grams: (150, 1_500) },
    Category { name: "jewelry", weight: 4, price_shift: 2, grams: (5, 300) },
];

pub(crate) const CATEGORY_WEIGHTS: [u32; 10] = {
    let mut w = [0; 10];
    let mut i = 0;
    while i < 10 {
        w[i] = CATEGORIES[i].weight;
        i += 1;
    }
    w
};

/// The price ladder in cents, `(low, high)`, and how often each rung is drawn
/// before the category's shift: most products are cheap, a few are expensive.
pub(crate) const PRICE_BUCKETS: [(u64, u64); 8] = [
    (1_500, 3_000),
    (3_000, 6_000),
    (6_000, 12_000),
    (12_000, 25_000),
    (25_000, 50_000),
    (50_000, 100_000),
    (100_000, 200_000),
    (200_000, 299_900),
];
pub(crate) const PRICE_BUCKET_WEIGHTS: [u32; 8] = [14, 22, 24, 18, 11, 6, 3, 2];
pub(crate) const MIN_PRICE_CENTS: u64 = 1_500;
pub(crate) const MAX_PRICE_CENTS: u64 = 299_900;

/// Order amounts stay within 10.00 ..= 3000.00.
pub(crate) const MIN_AMOUNT_CENTS: u64 = 1_000;
pub(crate) const MAX_AMOUNT_CENTS: u64 = 300_000;

/// `(pinyin, hanzi)` surnames and given names; a user's name is written in one
/// script or the other.
pub(crate) const SURNAMES: [(&str, &str); 16] = [
    ("Wang", "王"),
    ("Li", "李"),
    ("Zhang", "张"),
    ("Liu", "刘"),
    ("Chen", "陈"),
    ("Yang", "杨"),
    ("Huang", "黄"),
    ("Zhao", "赵"),
    ("Wu", "吴"),
    ("Zhou", "周"),
    ("Xu", "徐"),
    ("Sun", "孙"),
    ("Ma", "马"),
    ("Zhu", "朱"),
    ("Hu", "胡"),
    ("Guo", "郭"),
];
pub(crate) const GIVEN_NAMES: [(&str, &str); 18] = [
    ("Wei", "伟"),
    ("Fang", "芳"),
    ("Na", "娜"),
    ("Min", "敏"),
    ("Jing", "静"),
    ("Lei", "磊"),
    ("Qiang", "强"),
    ("Yang", "洋"),
    ("Yan", "艳"),
    ("Jie", "杰"),
    ("Tao", "涛"),
    ("Ming", "明"),
    ("Chao", "超"),
    ("Xiuying", "秀英"),
    ("Hui", "慧"),
    ("Lin", "琳"),
    ("Hao", "浩"),
    ("Yu", "宇"),
];

pub(crate) const CHANNELS: [&str; 4] = ["app", "web", "mini_program", "store_kiosk"];
pub(crate) const CHANNEL_WEIGHTS: [u32; 4] = [45, 22, 25, 8];
pub(crate) const MINI_PROGRAM: usize = 2;

/// Pages that show no single product. `None` stands for a category page.
pub(crate) const OTHER_PAGES: [Option<&str>; 9] = [
    Some("/"),
    Some("/"),
    Some("/search?q=running+shoes"),
    Some("/search?q=%E6%89%8B%E6%9C%BA"),
    Some("/cart"),
    Some("/account/orders"),
    Some("/promo/double-11"),
    None,
    None,
];

/// Relative activity by local hour (UTC+8), 00:00 … 23:00: quiet nights, a lunch
/// peak, and the evening rush.
pub(crate) const HOUR_WEIGHTS: [u64; 24] =
    [30, 15, 8, 5, 4, 6, 15, 35, 55, 65, 75, 80, 90, 80, 75, 75, 78, 85, 95, 110, 130, 140, 120, 70];

/// Relative activity by weekday, Monday … Sunday.
pub(crate) const WEEKDAY_WEIGHTS: [u64; 7] = [100, 100, 100, 102, 112, 130, 125];

/// Shopping festivals `(month, day, percent)`: 11.11 Singles' Day and its eve,
/// 6.18, and 12.12.
pub(crate) const FESTIVALS: [(u32, u32, u64); 4] = [(11, 10, 140), (11, 11, 300), (6, 18, 200), (12, 12, 150)];
