//! The referent pass: objects that are neither on a GC list nor in a pymalloc block (str, bytes,
//! int and untracked tuples over 512 bytes; static objects such as small ints and builtin types),
//! found by following pointers out of the objects we already know.
//!
//! Containers are followed exactly (list items, dict entries, set table, split values); other
//! objects' bodies are scanned conservatively, word by word: a word is an object only if it
//! passes the same validation as everything else (a real type, a sane refcount, a size that
//! computes). Pointers into arenas (or mimalloc pages) are skipped: the heap scan already judged
//! every block there.

use super::pyobj::{body_words, dict_items, dict_keys, managed_attrs, words_after_header};
use super::regions::Regions;
use super::sizes::getsizeof;
use super::types::{SizeRule, TypeInfo, TypeTable};
use crate::process::{Bytes, View};
use crate::python::layout::Layout;
use rustc_hash::FxHashSet as HashSet;

/// Most items read from one container.
const MAX_ITEMS: u64 = 1 << 26;

pub struct Referents {
    /// Heap areas whose blocks were all judged already.
    judged: Regions,
    /// Objects found outside the arenas (GC-listed ones included, to avoid re-scanning).
    known: HashSet<u64>,
    pending: Vec<u64>,
    pub found: Vec<u64>,
    pub rejected: u64,
}

impl Referents {
    pub fn new(judged: Regions) -> Referents {
        Referents {
            judged,
            known: HashSet::default(),
            pending: Vec::new(),
            found: Vec::new(),
            rejected: 0,
        }
    }

    /// Mark an object found by other means (a GC list) so it is not reported again.
    pub fn mark_known(&mut self, obj: u64) {
        if !self.judged.contains(obj) {
            self.known.insert(obj);
        }
    }

    fn push(&mut self, p: u64) {
        if p != 0 && p.is_multiple_of(8) && !self.judged.contains(p) && !self.known.contains(&p) {
            self.pending.push(p);
        }
    }

    /// Queue the referents of `obj`. `body` holds its bytes from `obj` on when the caller has
    /// them at hand (arena blocks); otherwise they are read through the view.
    pub fn scan(
        &mut self,
        view: &mut View,
        l: &Layout,
        obj: u64,
        t: &TypeInfo,
        body: Option<&[u8]>,
    ) {
        // The type is an object too (static types are found this way).
        self.push(t.addr);
        match t.rule {
            SizeRule::Str | SizeRule::Int => {}
            SizeRule::List => {
                let head = read_head(view, obj, body, (l.list_items + 8) as usize);
                let n = head.u64_at(l.ob_size as usize);
                let items = head.u64_at(l.list_items as usize);
                self.scan_array(view, items, n);
            }
            SizeRule::Dict | SizeRule::OrderedDict => {
                for (k, v) in dict_items(view, l, obj).unwrap_or_default() {
                    self.push(k);
                    self.push(v);
                }
            }
            SizeRule::Set => {
                let head = read_head(view, obj, body, (l.set_table + 8) as usize);
                let mask = head.u64_at(l.set_mask as usize);
                let table = head.u64_at(l.set_table as usize);
                if mask < MAX_ITEMS {
                    if let Ok(raw) = view.get(table, ((mask + 1) * 16) as usize) {
                        let keys: Vec<u64> = raw.chunks_exact(16).map(|e| e.u64_at(0)).collect();
                        keys.into_iter().for_each(|k| self.push(k));
                    }
                }
            }
            _ if t.scan_body => self.scan_generic(view, l, obj, t, body),
            _ => {}
        }
        self.scan_managed(view, l, obj, t);
    }

    fn scan_array(&mut self, view: &mut View, at: u64, n: u64) {
        if n == 0 || n > MAX_ITEMS {
            return;
        }
        if let Ok(raw) = view.get(at, (n * 8) as usize) {
            let words: Vec<u64> = raw.chunks_exact(8).map(|w| w.u64_at(0)).collect();
            words.into_iter().for_each(|w| self.push(w));
        }
    }

    fn scan_generic(
        &mut self,
        view: &mut View,
        l: &Layout,
        obj: u64,
        t: &TypeInfo,
        body: Option<&[u8]>,
    ) {
        let words = match body {
            Some(b) => words_after_header(l, b),
            None => body_words(view, l, obj, t),
        };
        words.into_iter().for_each(|w| self.push(w));
    }

    /// 3.11/3.12 instances keep attribute values in a separately allocated array before the
    /// object (3.13+ keep them inline, inside the body already scanned).
    fn scan_managed(&mut self, view: &mut View, l: &Layout, obj: u64, t: &TypeInfo) {
        let (dict, values) = managed_attrs(view, l, obj, t);
        self.push(dict);
        if values == 0 {
            return;
        }
        let keys = view.u64(t.addr + l.type_.ht_cached_keys).unwrap_or(0);
        if let Some(k) = (keys != 0).then(|| dict_keys(view, l, keys)).flatten() {
            self.scan_array(view, values, (k.nentries + k.usable).min(4096));
        }
    }

    /// Validate queued pointers; each new object is recorded and its referents queued in turn.
    pub fn drain(&mut self, view: &mut View, l: &Layout, types: &mut TypeTable) {
        while let Some(p) = self.pending.pop() {
            if !self.known.insert(p) {
                continue;
            }
            let Some(t) = validate(view, l, types, p) else {
                self.rejected += 1;
                continue;
            };
            self.found.push(p);
            self.scan(view, l, p, &t, None);
        }
    }
}

fn read_head(view: &mut View, obj: u64, body: Option<&[u8]>, n: usize) -> Vec<u8> {
    match body {
        Some(b) if b.len() >= n => b[..n].to_vec(),
        _ => view.get(obj, n).map(|b| b.to_vec()).unwrap_or_default(),
    }
}

/// An object outside the arenas: real type, sane refcount, and a size that computes.
fn validate(view: &mut View, l: &Layout, types: &mut TypeTable, p: u64) -> Option<TypeInfo> {
    let head = view.get(p, l.header_size as usize).ok()?;
    let tp = head.u64_at(l.ob_type as usize);
    if !l.live_refcount(head) || tp == 0 || !tp.is_multiple_of(8) {
        return None;
    }
    let t = types.get(view, l, tp)?.clone();
    getsizeof(view, l, p, &t)?;
    Some(t)
}
