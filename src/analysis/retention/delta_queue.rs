//! A first-in first-out queue of object indexes in 1–2 bytes per entry where a `VecDeque<u32>`
//! takes 4 (and up to 8 once it has doubled past a spike): the retention tree's breadth-first
//! frontier held 4.2M indexes at once on a service-shaped heap (a 32 MiB `VecDeque`), most of
//! them a list's items, which sit close together in memory and so in index order.
//!
//! Each entry is K numbers; each number is kept as the zigzag `varint` of its difference from the
//! same field of the entry pushed before it. Entries leave in the order they came, so the
//! reader rebuilds each value from the one it read before.

use super::varint;
use std::collections::VecDeque;

pub struct DeltaQueue<const K: usize> {
    bytes: VecDeque<u8>,
    last_in: [u32; K],
    last_out: [u32; K],
    len: usize,
}

impl<const K: usize> Default for DeltaQueue<K> {
    fn default() -> Self {
        DeltaQueue {
            bytes: VecDeque::new(),
            last_in: [0; K],
            last_out: [0; K],
            len: 0,
        }
    }
}

impl<const K: usize> DeltaQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the queue has room for (its memory, about).
    pub fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    pub fn push_back(&mut self, entry: [u32; K]) {
        for (v, last) in entry.into_iter().zip(&mut self.last_in) {
            let d = i64::from(v) - i64::from(*last);
            let z = ((d << 1) ^ (d >> 63)) as u64;
            varint::put(z, |b| self.bytes.push_back(b));
            *last = v;
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<[u32; K]> {
        if self.len == 0 {
            return None;
        }
        let mut out = [0u32; K];
        for (o, last) in out.iter_mut().zip(&mut self.last_out) {
            // The queue wrote every byte it reads.
            let z = varint::take(|| self.bytes.pop_front())?;
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            *last = (i64::from(*last) + d) as u32;
            *o = *last;
        }
        self.len -= 1;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_as_they_came() {
        let mut q = DeltaQueue::<3>::new();
        let entries = [
            [0, 0, 0],
            [5, u32::MAX, 7],
            [4, 0, 7],
            [u32::MAX, 1 << 31, 0],
            [1, 2, 3],
        ];
        for (k, e) in entries.iter().enumerate() {
            q.push_back(*e);
            // Interleaved: half of them leave before the rest come.
            if k % 2 == 1 {
                assert_eq!(q.pop_front(), Some(entries[k / 2]));
            }
        }
        let mut rest = Vec::new();
        while let Some(e) = q.pop_front() {
            rest.push(e);
        }
        assert_eq!(rest, entries[2..].to_vec());
        assert_eq!(q.len(), 0);
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn close_indexes_take_a_byte_each() {
        let mut q = DeltaQueue::<1>::new();
        for i in 0..1000u32 {
            q.push_back([1_000_000 + 3 * i]);
        }
        // The first difference takes 3 bytes, the others one.
        assert_eq!(q.bytes.len(), 3 + 999);
        assert_eq!(q.pop_front(), Some([1_000_000]));
    }
}
