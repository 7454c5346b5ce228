//! Entity keys, interned.
//!
//! The dataflow keys every instance by a dense `u64` id instead of its key
//! string: hashing, comparing and cloning ids is cheap, and a reference inside
//! a row is one word. Ids are assigned in the order keys are first seen, which
//! is deterministic for a given input, so results do not depend on the number
//! of workers. Anything that orders by key (dumps, paging) maps ids back first.

use foldhash::HashMap;
use segflow_compiler::value::Value;

#[derive(Clone, Debug, Default)]
pub struct Interner {
    keys: Vec<Value>,
    ids: HashMap<Value, u64>,
}

impl Interner {
    /// The id of `key`, and whether it was new.
    pub fn intern(&mut self, key: &Value) -> (u64, bool) {
        if let Some(&id) = self.ids.get(key) {
            return (id, false);
        }
        let id = self.keys.len() as u64;
        self.keys.push(key.clone());
        self.ids.insert(key.clone(), id);
        (id, true)
    }
    pub fn get(&self, key: &Value) -> Option<u64> {
        self.ids.get(key).copied()
    }
    pub fn key(&self, id: u64) -> &Value {
        &self.keys[id as usize]
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Keys from id `from` on, in id order (for publishing new keys).
    pub fn keys_from(&self, from: usize) -> &[Value] {
        &self.keys[from.min(self.keys.len())..]
    }
}
