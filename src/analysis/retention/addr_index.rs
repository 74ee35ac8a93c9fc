//! Address → object index over the sorted list of every object, asked once per reference
//! while a graph is captured (tens of millions of times). A binary search over the whole list
//! misses the cache at every step; this answers with two or three memory touches.
//!
//! Addresses are grouped into 64 KiB pages (a hash directory of a few thousand entries). A
//! page dense with objects (pymalloc's pools, mimalloc's pages) gets a bitmap of its 8-byte
//! words, one bit where an object starts, and the rank of each bitmap word: an object's index
//! is the page's first index plus the objects before it, counted by popcount. A sparse page
//! (large objects, statics) is searched within its own short range.

use rustc_hash::FxHashMap as HashMap;

const PAGE_SHIFT: u32 = 16;
/// Objects start on 8-byte boundaries (pymalloc, mimalloc and malloc align to 16, static
/// objects to 8 at least): one bit per word of a page.
const WORDS_PER_PAGE: usize = 1 << (PAGE_SHIFT - 3);
const BITMAP_WORDS: usize = WORDS_PER_PAGE / 64;
/// Fewest objects a page needs for a bitmap: a bitmap costs 1.25 KiB, so at most 5 bytes per
/// object here, and well under one byte on a pymalloc page (thousands of objects).
const DENSE: u32 = 256;
const NO_BITMAP: u32 = u32::MAX;

/// One page's objects: `objects[start..end]`, and its bitmap's number when it has one.
#[derive(Clone, Copy)]
struct Page {
    start: u32,
    end: u32,
    bitmap: u32,
}

pub struct AddrIndex<'a> {
    objects: &'a [u64],
    dir: HashMap<u64, Page>,
    /// Bitmaps of the dense pages, `BITMAP_WORDS` words each.
    bits: Vec<u64>,
    /// For each bitmap word, the objects of its page before it.
    rank: Vec<u16>,
}

impl<'a> AddrIndex<'a> {
    /// `objects` sorted and distinct.
    pub fn new(objects: &'a [u64]) -> AddrIndex<'a> {
        let mut dir: HashMap<u64, Page> = HashMap::default();
        let (mut bits, mut rank) = (Vec::new(), Vec::new());
        let mut start = 0usize;
        while start < objects.len() {
            let key = objects[start] >> PAGE_SHIFT;
            let end = start + objects[start..].partition_point(|&a| a >> PAGE_SHIFT == key);
            let mut page = Page {
                start: start as u32,
                end: end as u32,
                bitmap: NO_BITMAP,
            };
            let on_words = objects[start..end].iter().all(|&a| a & 7 == 0);
            if (end - start) as u32 >= DENSE && on_words {
                page.bitmap = (bits.len() / BITMAP_WORDS) as u32;
                let first = bits.len();
                bits.resize(first + BITMAP_WORDS, 0u64);
                for &a in &objects[start..end] {
                    let w = ((a >> 3) as usize) & (WORDS_PER_PAGE - 1);
                    bits[first + w / 64] |= 1 << (w % 64);
                }
                let mut before = 0u16;
                for &word in &bits[first..] {
                    rank.push(before);
                    // At most 8192 objects start in a page of 8192 words: fits in u16.
                    before += word.count_ones() as u16;
                }
            }
            dir.insert(key, page);
            start = end;
        }
        AddrIndex {
            objects,
            dir,
            bits,
            rank,
        }
    }

    /// The index of the object that starts at `addr`, if one does.
    pub fn find(&self, addr: u64) -> Option<u32> {
        let page = *self.dir.get(&(addr >> PAGE_SHIFT))?;
        if page.bitmap == NO_BITMAP || addr & 7 != 0 {
            return self.objects[page.start as usize..page.end as usize]
                .binary_search(&addr)
                .ok()
                .map(|k| page.start + k as u32);
        }
        let w = ((addr >> 3) as usize) & (WORDS_PER_PAGE - 1);
        let at = page.bitmap as usize * BITMAP_WORDS + w / 64;
        let word = self.bits[at];
        let bit = 1u64 << (w % 64);
        if word & bit == 0 {
            return None;
        }
        let below = (word & (bit - 1)).count_ones();
        Some(page.start + u32::from(self.rank[at]) + below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of page: dense (a bitmap, objects up to its last word), sparse, one with an
    /// address off the 8-byte grid; every listed address is found at its index, and addresses
    /// between objects, inside a page or outside every page, are not.
    #[test]
    fn finds_exactly_the_listed_addresses() {
        let mut objects: Vec<u64> = Vec::new();
        let dense = 0x7f00_0000_0000u64;
        objects.extend((0..4000).map(|k| dense + 16 * k));
        // A full page: every word an object (the rank's largest values).
        let full = 0x7f00_0010_0000u64;
        objects.extend((0..WORDS_PER_PAGE as u64).map(|k| full + 8 * k));
        let sparse = 0x5500_0000_0000u64;
        objects.extend([sparse + 0x40, sparse + 0x1000, sparse + 0xfff8]);
        let odd = 0x5500_0001_0000u64;
        objects.extend((0..300).map(|k| odd + 32 * k + 4));
        objects.sort_unstable();
        let index = AddrIndex::new(&objects);
        assert_eq!(index.bits.len(), 2 * BITMAP_WORDS, "two dense pages");
        for (i, &a) in objects.iter().enumerate() {
            assert_eq!(index.find(a), Some(i as u32), "{a:#x}");
        }
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
                assert_eq!(index.find(a), None, "{a:#x}");
            }
        }
    }
}
