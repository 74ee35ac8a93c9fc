//! Address → object index over the sorted list of every object, asked once per reference
//! while a graph is captured (tens of millions of times). A binary search over the whole list
//! misses the cache at every step; this answers with two or three memory touches.
//!
//! Addresses are grouped into 64 KiB pages (a hash directory of a few thousand entries). A
//! page dense with objects (pymalloc's pools, mimalloc's pages) gets a bitmap of its 16-byte
//! granules (8-byte ones where an object is not 16-aligned), one bit where an object starts,
//! and per 8 bitmap words (one cache line) the objects before them: an object's index is the
//! page's first index plus the objects before it, counted by popcount. A sparse page (large
//! objects, statics) is searched within its own short range.

use rustc_hash::FxHashMap as HashMap;

const PAGE_SHIFT: u32 = 16;
/// Objects start on 8-byte boundaries at least (pymalloc, mimalloc and malloc align them to
/// 16; static objects to 8): a bitmap's bit is a 16-byte granule where every object of the
/// page is 16-aligned, else an 8-byte word (twice the bitmap).
const FINE: u32 = 3;
const COARSE: u32 = 4;
/// Bitmap words of a page at the finer grain; the coarse grain uses the first half.
const BITMAP_WORDS: usize = (1 << (PAGE_SHIFT - FINE)) / 64;
/// Bitmap words counted together: one cache line, so the popcounts within it cost no miss.
const GROUP: usize = 8;
/// Fewest objects a page needs for a bitmap: a fine bitmap costs 1 KiB (+ 32 bytes of
/// counts), so at most 4 bytes per object here, and a fraction of one on a pymalloc page
/// (thousands of objects, a 512-byte bitmap).
const DENSE: u32 = 256;

/// One page's objects: `objects[start..end]`, and where its bitmap starts in `bits` (in
/// words) and its granule's shift, when it has one.
#[derive(Clone, Copy)]
struct Page {
    start: u32,
    end: u32,
    bitmap: u32,
    shift: u8,
}

/// `Page::shift` of a page searched by address (no bitmap).
const NO_BITMAP: u8 = 0;

pub struct AddrIndex<'a> {
    objects: &'a [u64],
    dir: HashMap<u64, Page>,
    /// Bitmaps of the dense pages, one after another.
    bits: Vec<u64>,
    /// For each group of `GROUP` bitmap words, the objects of its page before it.
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
                bitmap: 0,
                shift: NO_BITMAP,
            };
            let page_objects = &objects[start..end];
            let grain = |shift: u32| page_objects.iter().all(|&a| a & ((1 << shift) - 1) == 0);
            let shift = if grain(COARSE) { COARSE } else { FINE };
            if (end - start) as u32 >= DENSE && grain(shift) {
                let words = BITMAP_WORDS >> (shift - FINE);
                let first = bits.len();
                page.bitmap = first as u32;
                page.shift = shift as u8;
                bits.resize(first + words, 0u64);
                for &a in page_objects {
                    let g = granule(a, shift);
                    bits[first + g / 64] |= 1 << (g % 64);
                }
                let mut before = 0u16;
                for group in bits[first..].chunks(GROUP) {
                    rank.push(before);
                    // At most 8192 objects start in a page: fits in u16.
                    before += group.iter().map(|w| w.count_ones() as u16).sum::<u16>();
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
        let shift = u32::from(page.shift);
        if shift == u32::from(NO_BITMAP) || addr & ((1 << shift) - 1) != 0 {
            return self.objects[page.start as usize..page.end as usize]
                .binary_search(&addr)
                .ok()
                .map(|k| page.start + k as u32);
        }
        let g = granule(addr, shift);
        let (first, w) = (page.bitmap as usize, g / 64);
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
}

/// An address's granule within its page.
fn granule(addr: u64, shift: u32) -> usize {
    ((addr & ((1 << PAGE_SHIFT) - 1)) >> shift) as usize
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
        objects.extend((0..(BITMAP_WORDS * 64) as u64).map(|k| full + 8 * k));
        let sparse = 0x5500_0000_0000u64;
        objects.extend([sparse + 0x40, sparse + 0x1000, sparse + 0xfff8]);
        let odd = 0x5500_0001_0000u64;
        objects.extend((0..300).map(|k| odd + 32 * k + 4));
        objects.sort_unstable();
        let index = AddrIndex::new(&objects);
        // The 16-aligned page's bitmap is half the 8-aligned one's.
        assert_eq!(index.bits.len(), BITMAP_WORDS / 2 + BITMAP_WORDS);
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
