//! Interned values with their users counted: what many flows share (a path's verdict
//! and legs, a flow entry's decision, a connection's rewrites) is stored once and named
//! by a `u32`, so that a flow's own record stays a few words. Interning happens on the
//! slow path; the fast path only reads by index.

use std::collections::HashMap;
use std::hash::Hash;

use ahash::RandomState;

/// Values of `T`, each stored once, freed when its last user lets go.
pub struct Interner<T> {
    index: HashMap<T, u32, RandomState>,
    slots: Vec<(Option<T>, u32)>,
    free: Vec<u32>,
    /// The value acquired last: flows opened one after another mostly share it, and
    /// comparing with it costs far less than hashing a value (a path's legs and rewrite).
    recent: u32,
}

impl<T> Default for Interner<T> {
    fn default() -> Interner<T> {
        Interner {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            recent: u32::MAX,
        }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    pub fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id as usize)?.0.as_ref()
    }

    /// The value's id, with one more user.
    pub fn acquire(&mut self, value: T) -> u32 {
        if let Some((Some(v), users)) = self.slots.get_mut(self.recent as usize)
            && *v == value
        {
            *users += 1;
            return self.recent;
        }
        let id = self.acquire_hashed(value);
        self.recent = id;
        id
    }

    fn acquire_hashed(&mut self, value: T) -> u32 {
        if let Some(&id) = self.index.get(&value) {
            if let Some(s) = self.slots.get_mut(id as usize) {
                s.1 += 1;
            }
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(s) = self.slots.get_mut(id as usize) {
                    *s = (Some(value.clone()), 1);
                }
                id
            }
            None => {
                self.slots.push((Some(value.clone()), 1));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(value, id);
        id
    }

    /// One user fewer; the last one frees the value.
    pub fn release(&mut self, id: u32) {
        let Some(s) = self.slots.get_mut(id as usize) else {
            return;
        };
        s.1 = s.1.saturating_sub(1);
        if s.1 == 0
            && let Some(value) = s.0.take()
        {
            self.index.remove(&value);
            self.free.push(id);
        }
    }

    /// Distinct values held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes on the heap (the values' own heap parts aside).
    pub fn memory_bytes(&self) -> usize {
        super::uft::hash_table_bytes(self.index.capacity(), std::mem::size_of::<(T, u32)>())
            + self.slots.capacity() * std::mem::size_of::<(Option<T>, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lives_as_long_as_its_users() {
        let mut i = Interner::default();
        let a = i.acquire("a".to_string());
        assert_eq!(i.acquire("a".to_string()), a);
        let b = i.acquire("b".to_string());
        assert_ne!(a, b);
        i.release(a);
        assert_eq!(i.get(a).map(String::as_str), Some("a"));
        i.release(a);
        assert_eq!(i.get(a), None);
        assert_eq!(i.len(), 1);
        // The freed slot is reused.
        assert_eq!(i.acquire("c".to_string()), a);
    }
}
