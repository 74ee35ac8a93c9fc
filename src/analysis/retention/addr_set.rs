//! The graph's object addresses: a sorted set of millions of addresses held in one or two bytes
//! per object instead of eight, that answers both ways. Address → index is asked once per
//! reference while a graph is captured (tens of millions of times): two or three memory
//! touches, where a binary search over a flat list misses the cache at every step. Index →
//! address (and addresses in order) serve heap dumps, diffs and the debug log.
//!
//! Addresses are grouped into 64 KiB pages, in order, with a hash directory of them. A page
//! dense with objects (pymalloc's pools, mimalloc's pages) is a bitmap of its 16-byte granules
//! (8-byte ones where an object is not 16-aligned), one bit where an object starts, and per 8
//! bitmap words (one cache line) the objects before them: an object's index is the page's
//! first index plus a popcount. Any other page (large objects, statics) lists its objects'
//! offsets within the page, 2 bytes each, searched within the page.

use rustc_hash::FxHashMap as HashMap;

const PAGE_SHIFT: u32 = 16;
const PAGE_MASK: u64 = (1 << PAGE_SHIFT) - 1;
/// Objects start on 8-byte boundaries at least (pymalloc, mimalloc and malloc align them to
/// 16; static objects to 8): a bitmap's bit is a 16-byte granule where every object of the
/// page is 16-aligned, else an 8-byte word (twice the bitmap).
const FINE: u32 = 3;
const COARSE: u32 = 4;
/// Bitmap words of a page at the finer grain; the coarse grain uses the first half.
const BITMAP_WORDS: usize = (1 << (PAGE_SHIFT - FINE)) / 64;
/// Bitmap words counted together: one cache line, so the popcounts within it cost no miss.
const GROUP: usize = 8;
/// Fewest objects a page needs for a bitmap: a fine bitmap costs 1 KiB (+ 128 bytes of
/// counts), so at most 4.5 bytes per object here, and a fraction of one on a pymalloc page
/// (thousands of objects, a 512-byte bitmap); listed offsets cost 2.
const DENSE: usize = 256;

/// One page: its objects are `start..end`; `at` is where its bitmap starts in `bits` (in
/// words) or its offsets in `offsets`, as `shift` says.
#[derive(Debug, Clone, Copy)]
struct Page {
    key: u64,
    start: u32,
    end: u32,
    at: u32,
    shift: u8,
}

/// `Page::shift` of a page that lists offsets (no bitmap).
const OFFSETS: u8 = 0;

impl Page {
    fn base(&self) -> u64 {
        self.key << PAGE_SHIFT
    }

    fn words(&self) -> usize {
        BITMAP_WORDS >> (u32::from(self.shift) - FINE)
    }
}

#[derive(Debug, Default)]
pub struct AddrSet {
    /// In address order.
    pages: Vec<Page>,
    /// Page key (address >> 16) → its position in `pages`.
    dir: HashMap<u64, u32>,
    /// Bitmaps of the dense pages, one after another.
    bits: Vec<u64>,
    /// For each group of `GROUP` bitmap words, the objects of its page before it.
    rank: Vec<u16>,
    /// Offsets within their page of the other pages' objects.
    offsets: Vec<u16>,
    len: usize,
}

impl AddrSet {
    /// The set of `sorted` (sorted and distinct; fewer than 4G).
    pub fn new(sorted: &[u64]) -> AddrSet {
        let mut s = AddrSet::default();
        let mut start = 0usize;
        while start < sorted.len() {
            let key = sorted[start] >> PAGE_SHIFT;
            let end = start + sorted[start..].partition_point(|&a| a >> PAGE_SHIFT == key);
            s.add_page(&sorted[start..end]);
            start = end;
        }
        s
    }

    /// Append one page's objects (sorted, distinct, in one page past the last one's).
    fn add_page(&mut self, objects: &[u64]) {
        let Some(&first_addr) = objects.first() else {
            return;
        };
        let key = first_addr >> PAGE_SHIFT;
        let aligned = |shift: u32| objects.iter().all(|&a| a & ((1 << shift) - 1) == 0);
        let shift = if aligned(COARSE) { COARSE } else { FINE };
        let mut page = Page {
            key,
            start: self.len as u32,
            end: (self.len + objects.len()) as u32,
            at: self.offsets.len() as u32,
            shift: OFFSETS,
        };
        if objects.len() >= DENSE && aligned(shift) {
            let first = self.bits.len();
            page.at = first as u32;
            page.shift = shift as u8;
            self.bits.resize(first + page.words(), 0u64);
            for &a in objects {
                let g = granule(a, shift);
                self.bits[first + g / 64] |= 1 << (g % 64);
            }
            // At most 8192 objects start in a page: the counts fit in u16.
            let mut before = 0u16;
            for group in self.bits[first..].chunks(GROUP) {
                self.rank.push(before);
                before += group.iter().map(|w| w.count_ones() as u16).sum::<u16>();
            }
        } else {
            (self.offsets).extend(objects.iter().map(|&a| (a & PAGE_MASK) as u16));
        }
        self.dir.insert(key, self.pages.len() as u32);
        self.pages.push(page);
        self.len += objects.len();
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of the object that starts at `addr`, if one does.
    pub fn find(&self, addr: u64) -> Option<u32> {
        let page = *self
            .pages
            .get(*self.dir.get(&(addr >> PAGE_SHIFT))? as usize)?;
        let low = addr & PAGE_MASK;
        if page.shift == OFFSETS {
            let listed = &self.offsets[page.at as usize..][..(page.end - page.start) as usize];
            return listed
                .binary_search(&(low as u16))
                .ok()
                .map(|k| page.start + k as u32);
        }
        let shift = u32::from(page.shift);
        if low & ((1 << shift) - 1) != 0 {
            return None;
        }
        let g = granule(addr, shift);
        let (first, w) = (page.at as usize, g / 64);
        let bit = 1u64 << (g % 64);
        let word = self.bits[first + w];
        if word & bit == 0 {
            return None;
        }
        let group = w / GROUP * GROUP;
        let earlier: u32 = (self.bits[first + group..first + w].iter())
            .map(|x| x.count_ones())
            .sum();
        let rank = self.rank[(first + group) / GROUP];
        Some(page.start + u32::from(rank) + earlier + (word & (bit - 1)).count_ones())
    }

    /// The address of object `i` (0 past the last).
    pub fn get(&self, i: u32) -> u64 {
        self.iter_from(i).next().unwrap_or(0)
    }

    /// Every address, in order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The addresses of objects `i` and on, in order.
    pub fn iter_from(&self, i: u32) -> Iter<'_> {
        let page = self.pages.partition_point(|p| p.end <= i);
        let k = self.pages.get(page).map_or(0, |p| i - p.start);
        Iter {
            set: self,
            page,
            k,
            w: 0,
            word: 0,
            placed: false,
        }
    }
}

/// An `AddrSet` made from addresses given one at a time (a heap dump's, read back): only
/// one page of them is held as they come.
#[derive(Debug, Default)]
pub struct Builder {
    set: AddrSet,
    page: Vec<u64>,
    /// Whether an address came that was not above the one before.
    disordered: bool,
}

impl Builder {
    pub fn push(&mut self, addr: u64) {
        if let Some(&last) = self.page.last() {
            if addr <= last {
                self.disordered = true;
                return;
            }
            if addr >> PAGE_SHIFT != last >> PAGE_SHIFT {
                self.set.add_page(&self.page);
                self.page.clear();
            }
        }
        self.page.push(addr);
    }

    /// The set, or None when the addresses did not come sorted and distinct.
    pub fn finish(mut self) -> Option<AddrSet> {
        self.set.add_page(&self.page);
        (!self.disordered).then_some(self.set)
    }
}

/// Addresses in order. On a dense page it keeps the bitmap word at hand with the objects
/// already given cleared from it.
pub struct Iter<'a> {
    set: &'a AddrSet,
    page: usize,
    /// The next object's position within its page.
    k: u32,
    /// Dense pages: the word (index into `bits`) holding the next object, and its bits from
    /// the next object on.
    w: usize,
    word: u64,
    /// Whether `w` and `word` are set for the page (they are found on its first object).
    placed: bool,
}

impl Iter<'_> {
    /// Point `w` and `word` at the page's object `k`.
    fn place(&mut self, page: &Page) {
        let first = page.at as usize;
        let groups = &self.set.rank[first / GROUP..(first + page.words()) / GROUP];
        // The last group with at most k objects before it holds object k (the first has 0).
        let group = groups.partition_point(|&b| u32::from(b) <= self.k).max(1) - 1;
        let mut left = self.k - u32::from(groups[group]);
        self.w = first + group * GROUP;
        // Bounded by the page's bitmap: object k is in it (k < its count).
        while self.w < first + page.words() {
            let word = self.set.bits[self.w];
            if left < word.count_ones() {
                self.word = word;
                for _ in 0..left {
                    self.word &= self.word - 1;
                }
                break;
            }
            left -= word.count_ones();
            self.w += 1;
        }
        self.placed = true;
    }
}

impl Iterator for Iter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let set = self.set;
        loop {
            let page = set.pages.get(self.page)?;
            if self.k >= page.end - page.start {
                self.page += 1;
                self.k = 0;
                self.placed = false;
                continue;
            }
            if page.shift == OFFSETS {
                let low = set.offsets[page.at as usize + self.k as usize];
                self.k += 1;
                return Some(page.base() | u64::from(low));
            }
            if !self.placed {
                self.place(page);
            }
            let end = page.at as usize + page.words();
            while self.word == 0 && self.w + 1 < end {
                self.w += 1;
                self.word = set.bits[self.w];
            }
            if self.word == 0 {
                // Fewer bits than the page's count: not a set `new` made.
                self.k = page.end - page.start;
                continue;
            }
            let g = (self.w - page.at as usize) * 64 + self.word.trailing_zeros() as usize;
            self.word &= self.word - 1;
            self.k += 1;
            return Some(page.base() | (g as u64) << page.shift);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let done = self
            .set
            .pages
            .get(self.page)
            .map_or(self.set.len, |p| (p.start + self.k) as usize);
        let left = self.set.len.saturating_sub(done);
        (left, Some(left))
    }
}

/// An address's granule within its page.
fn granule(addr: u64, shift: u32) -> usize {
    ((addr & PAGE_MASK) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of page: dense at either grain (one full: the counts' largest values),
    /// sparse, and one with addresses off the 8-byte grid.
    fn mixed() -> Vec<u64> {
        let mut objects: Vec<u64> = Vec::new();
        let dense = 0x7f00_0000_0000u64;
        objects.extend((0..4000).map(|k| dense + 16 * k));
        let full = 0x7f00_0010_0000u64;
        objects.extend((0..(BITMAP_WORDS * 64) as u64).map(|k| full + 8 * k));
        let gappy = 0x7f00_0020_0000u64;
        objects.extend((0..600).map(|k| gappy + 16 * (k * k % 4093)));
        let sparse = 0x5500_0000_0000u64;
        objects.extend([sparse + 0x40, sparse + 0x1000, sparse + 0xfff8]);
        let odd = 0x5500_0001_0000u64;
        objects.extend((0..300).map(|k| odd + 32 * k + 4));
        objects.sort_unstable();
        objects.dedup();
        objects
    }

    /// Every listed address is found at its index, and addresses between objects, inside a
    /// page or outside every page, are not.
    #[test]
    fn finds_exactly_the_listed_addresses() {
        let objects = mixed();
        let set = AddrSet::new(&objects);
        assert_eq!(set.len, objects.len());
        for (i, &a) in objects.iter().enumerate() {
            assert_eq!(set.find(a), Some(i as u32), "{a:#x}");
        }
        let dense = 0x7f00_0000_0000u64;
        let (sparse, odd, full) = (0x5500_0000_0000u64, 0x5500_0001_0000u64, 0x7f00_0010_0000);
        for a in [
            dense + 8,
            dense + 16 * 4000,
            dense + 0xfff8,
            sparse,
            sparse + 0x48,
            odd + 8,
            odd + 20,
            0,
            u64::MAX,
            full - 8,
        ] {
            if objects.binary_search(&a).is_err() {
                assert_eq!(set.find(a), None, "{a:#x}");
            }
        }
    }

    /// Index → address, one at a time and in order from any object, gives the list back.
    #[test]
    fn gives_the_addresses_back_in_order() {
        let objects = mixed();
        let set = AddrSet::new(&objects);
        assert!(set.iter().eq(objects.iter().copied()));
        for (i, &a) in objects.iter().enumerate() {
            assert_eq!(set.get(i as u32), a, "object {i}");
        }
        for i in (0..objects.len()).step_by(97) {
            assert!(set.iter_from(i as u32).eq(objects[i..].iter().copied()));
            assert_eq!(set.iter_from(i as u32).size_hint().0, objects.len() - i);
        }
        assert_eq!(set.get(objects.len() as u32), 0);
        assert_eq!(AddrSet::new(&[]).iter().next(), None);
        let mut built = Builder::default();
        for &a in &objects {
            built.push(a);
        }
        let built = built.finish().expect("sorted");
        assert!(built.iter().eq(objects.iter().copied()));
        let mut disordered = Builder::default();
        for a in [16, 32, 32] {
            disordered.push(a);
        }
        assert!(disordered.finish().is_none());
    }

    /// A dense page costs a bitmap, not 8 bytes per object.
    #[test]
    fn dense_pages_cost_a_bit_per_granule() {
        let objects: Vec<u64> = (0..100_000u64).map(|k| 0x7f00_0000_0000 + 32 * k).collect();
        let set = AddrSet::new(&objects);
        let bytes = set.bits.len() * 8 + set.rank.len() * 2 + set.offsets.len() * 2;
        assert!(bytes * 2 < objects.len(), "{bytes} bytes");
    }
}
