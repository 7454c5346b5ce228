//! The difference type that carries sums and counts.
//!
//! Differential dataflow accumulates the "diff" of every update. Choosing a diff
//! of `(sum, count)` lets `count`, `sum`, `avg` and `exists` be maintained with
//! one accumulator per group: an event contributes `(its value, 1)` when it
//! enters and `(-value, -1)` when it leaves, and the arrangement's compaction
//! keeps only the total. Sums are in decimal units (10^-6), so decimal money and
//! integer quantities are both exact.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SumCount {
    /// Sum of the values, in units of 10^-6.
    pub sum: i128,
    /// Number of values.
    pub count: i64,
}

impl IsZero for SumCount {
    fn is_zero(&self) -> bool {
        self.sum == 0 && self.count == 0
    }
}

impl Semigroup for SumCount {
    fn plus_equals(&mut self, rhs: &Self) {
        self.sum += rhs.sum;
        self.count += rhs.count;
    }
}

impl Monoid for SumCount {
    fn zero() -> Self {
        SumCount::default()
    }
}

impl Abelian for SumCount {
    fn negate(&mut self) {
        self.sum = -self.sum;
        self.count = -self.count;
    }
}

impl Multiply<isize> for SumCount {
    type Output = SumCount;
    fn multiply(self, rhs: &isize) -> SumCount {
        SumCount { sum: self.sum * *rhs as i128, count: self.count * *rhs as i64 }
    }
}
