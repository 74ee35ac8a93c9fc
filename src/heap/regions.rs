//! Address ranges a heap scan has already judged block by block (pymalloc arenas, mimalloc
//! pages): the referent pass need not look at pointers into them again.

/// Address ranges already judged block by block: pointers into them need no second look.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    ranges: Vec<(u64, u64)>,
}

impl Regions {
    pub fn new(mut ranges: Vec<(u64, u64)>) -> Regions {
        ranges.sort_unstable();
        // Arenas are often mapped back to back: merged, the search has fewer steps.
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Regions { ranges: merged }
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.range_of(addr).is_some()
    }

    /// The range holding `addr`, as (start, end).
    pub fn range_of(&self, addr: u64) -> Option<(u64, u64)> {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        let r = *self.ranges.get(i.checked_sub(1)?)?;
        (addr < r.1).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_contain_their_ranges_only() {
        let r = Regions::new(vec![(300, 400), (100, 200)]);
        assert!(r.contains(100) && r.contains(199) && r.contains(350));
        assert!(!r.contains(99) && !r.contains(200) && !r.contains(400));
    }
}
