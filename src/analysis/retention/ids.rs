//! Per-object (or per-reference) ids below a bound known when the array is made — type and
//! edge-label ids — in 2 bytes each where the bound allows, else 4. Every heap measured has a
//! few hundred types and at most tens of thousands of distinct labels (attribute and key
//! names), so the graph's two largest id arrays cost half.

/// "No id" as `get` returns it (`heap_graph::NO_TYPE`): stored as `u16::MAX` when narrow.
pub const NONE: u32 = u32::MAX;
const NARROW_NONE: u16 = u16::MAX;

#[derive(Debug, Clone)]
pub enum Ids {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Default for Ids {
    fn default() -> Ids {
        Ids::Narrow(Vec::new())
    }
}

/// Unnarrowed ids, as they are.
impl From<Vec<u32>> for Ids {
    fn from(v: Vec<u32>) -> Ids {
        Ids::Wide(v)
    }
}

/// Unnarrowed ids, as they come.
impl FromIterator<u32> for Ids {
    fn from_iter<I: IntoIterator<Item = u32>>(ids: I) -> Ids {
        Ids::Wide(ids.into_iter().collect())
    }
}

impl Extend<u32> for Ids {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, ids: I) {
        for id in ids {
            self.push(id);
        }
    }
}

impl Ids {
    /// Whether ids below `bound` (and `NONE`) fit in 2 bytes.
    fn narrow(bound: usize) -> bool {
        bound < NARROW_NONE as usize
    }

    /// An empty array for ids below `bound`, with room for `capacity`.
    pub fn with_bound(bound: usize, capacity: usize) -> Ids {
        if Ids::narrow(bound) {
            Ids::Narrow(Vec::with_capacity(capacity))
        } else {
            Ids::Wide(Vec::with_capacity(capacity))
        }
    }

    /// `n` ids, each `id` (below `bound`).
    pub fn filled(n: usize, id: u32, bound: usize) -> Ids {
        if Ids::narrow(bound) {
            Ids::Narrow(vec![u16::try_from(id).unwrap_or(NARROW_NONE); n])
        } else {
            Ids::Wide(vec![id; n])
        }
    }

    /// `wide`'s ids (below `bound`, or `NONE`), narrowed when they fit. Anything else that
    /// does not fit becomes `NONE`.
    pub fn narrowed(wide: Vec<u32>, bound: usize) -> Ids {
        if !Ids::narrow(bound) {
            return Ids::Wide(wide);
        }
        Ids::Narrow(
            wide.iter()
                .map(|&t| {
                    u16::try_from(t)
                        .ok()
                        .filter(|&t| (t as usize) < bound)
                        .unwrap_or(NARROW_NONE)
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        match self {
            Ids::Narrow(v) => v.len(),
            Ids::Wide(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `i`'s id; `NONE` when it has none or is past the end.
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Ids::Narrow(v) => match v.get(i) {
                Some(&NARROW_NONE) | None => NONE,
                Some(&t) => u32::from(t),
            },
            Ids::Wide(v) => v.get(i).copied().unwrap_or(NONE),
        }
    }

    /// Set item `i`'s id (below the bound the array was made for, or `NONE`).
    pub fn set(&mut self, i: usize, id: u32) {
        match self {
            Ids::Narrow(v) => v[i] = u16::try_from(id).unwrap_or(NARROW_NONE),
            Ids::Wide(v) => v[i] = id,
        }
    }

    pub fn push(&mut self, id: u32) {
        match self {
            Ids::Narrow(v) => v.push(u16::try_from(id).unwrap_or(NARROW_NONE)),
            Ids::Wide(v) => v.push(id),
        }
    }

    /// Append any id (or `NONE`), widening the array when it does not fit: for ids whose
    /// bound is not known up front (a heap dump's, read back).
    pub fn push_widening(&mut self, id: u32) {
        if let Ids::Narrow(v) = self {
            if id != NONE && id >= u32::from(NARROW_NONE) {
                let mut wide = Vec::with_capacity(v.capacity());
                wide.extend(
                    v.iter()
                        .map(|&t| if t == NARROW_NONE { NONE } else { u32::from(t) }),
                );
                *self = Ids::Wide(wide);
            }
        }
        self.push(id);
    }

    /// Room for `more` ids.
    pub fn try_reserve_exact(
        &mut self,
        more: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        match self {
            Ids::Narrow(v) => v.try_reserve_exact(more),
            Ids::Wide(v) => v.try_reserve_exact(more),
        }
    }

    /// Items `range`'s ids, in order.
    pub fn range(&self, range: std::ops::Range<usize>) -> Iter<'_> {
        match self {
            Ids::Narrow(v) => Iter::Narrow(v[range].iter()),
            Ids::Wide(v) => Iter::Wide(v[range].iter()),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.range(0..self.len())
    }
}

pub enum Iter<'a> {
    Narrow(std::slice::Iter<'a, u16>),
    Wide(std::slice::Iter<'a, u32>),
}

impl Iterator for Iter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Iter::Narrow(it) => it
                .next()
                .map(|&t| if t == NARROW_NONE { NONE } else { u32::from(t) }),
            Iter::Wide(it) => it.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Narrow(it) => it.size_hint(),
            Iter::Wide(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Narrow and wide arrays answer alike, `NONE` included; a bound past 2 bytes stays wide.
    #[test]
    fn narrow_and_wide_answer_alike() {
        let ids = vec![0, 7, NONE, 65_533, 3];
        let narrow = Ids::narrowed(ids.clone(), 65_534);
        assert!(matches!(narrow, Ids::Narrow(_)));
        let wide = Ids::narrowed(ids.clone(), 70_000);
        assert!(matches!(wide, Ids::Wide(_)));
        for a in [&narrow, &wide] {
            assert_eq!(a.iter().collect::<Vec<_>>(), ids);
            assert_eq!(a.range(1..3).collect::<Vec<_>>(), vec![7, NONE]);
            assert_eq!(a.get(2), NONE);
            assert_eq!(a.get(99), NONE);
        }
        let mut built = Ids::with_bound(10, 0);
        for &t in &[1, NONE, 9] {
            built.push(t);
        }
        built.set(0, 4);
        assert_eq!(built.iter().collect::<Vec<_>>(), vec![4, NONE, 9]);
        assert_eq!(
            Ids::filled(3, 2, 5).iter().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        let mut grown = Ids::default();
        for &t in &ids {
            grown.push_widening(t);
        }
        assert!(matches!(grown, Ids::Narrow(_)));
        grown.push_widening(70_000);
        assert!(matches!(grown, Ids::Wide(_)));
        assert_eq!(grown.iter().collect::<Vec<_>>()[..ids.len()], ids[..]);
        assert_eq!(grown.get(ids.len()), 70_000);
    }
}
