//! The objects the sampled sources found new, each with the stack it is charged to, and the
//! latest record at each address (what the end checks for survival).

use super::stats::AllocStats;
use std::collections::HashMap;

/// An object seen new at some tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    pub obj: u64,
    pub type_ptr: u64,
    pub fingerprint: u64,
    pub stack: u32,
    /// 0: a GC object from the young list; else the bytes read at the object from its block
    /// (an untracked object alone in a pymalloc block, or any object in a free-threaded
    /// build's mimalloc block: `block_fingerprint`).
    pub block: u16,
}

/// An object found new at a tick, before it is charged to a stack.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewObject {
    pub obj: u64,
    pub type_ptr: u64,
    pub fingerprint: u64,
    /// As `Record::block`.
    pub block: u16,
}

/// What a source found at a tick, in the order it decided: objects charged to a stack, or
/// (None) to no stack, counted as unattributed.
pub(super) type Batch = (Option<u32>, Vec<NewObject>);

pub(super) struct Records {
    records: Vec<Record>,
    /// Address → index of the latest record there.
    latest: HashMap<u64, u32>,
    /// `SamplerOptions::max_records`.
    max_records: usize,
}

impl Records {
    pub(super) fn new(max_records: usize) -> Records {
        Records {
            records: Vec::new(),
            latest: HashMap::new(),
            max_records,
        }
    }

    /// The latest record at `obj` is this object (a walk stops at one recorded before).
    pub(super) fn known(&self, obj: u64, type_ptr: u64, fingerprint: u64) -> bool {
        self.latest.get(&obj).is_some_and(|&i| {
            let r = self.records[i as usize];
            r.type_ptr == type_ptr && r.fingerprint == fingerprint
        })
    }

    /// Keep a batch charged to a stack; count one charged to none.
    pub(super) fn take(&mut self, (stack, fresh): Batch, stats: &mut AllocStats) {
        match stack {
            Some(stack) => self.keep(fresh, stack, stats),
            None => {
                stats.unattributed += fresh.len() as u64;
                self.forget_reused(&fresh);
            }
        }
    }

    /// Record new objects as made by `stack`.
    fn keep(&mut self, fresh: Vec<NewObject>, stack: u32, stats: &mut AllocStats) {
        for NewObject {
            obj,
            type_ptr,
            fingerprint,
            block,
        } in fresh
        {
            if self.records.len() >= self.max_records {
                stats.dropped += 1;
                continue;
            }
            let idx = self.records.len() as u32;
            self.records.push(Record {
                obj,
                type_ptr,
                fingerprint,
                stack,
                block,
            });
            self.latest.insert(obj, idx);
            stats.records += 1;
            if block > 0 {
                stats.untracked_records += 1;
            }
        }
    }

    /// New objects not recorded still prove that what was recorded at their addresses died:
    /// kept, such a record passes the final check whenever the new object looks the same (the
    /// same int or str made again by the next request).
    fn forget_reused(&mut self, fresh: &[NewObject]) {
        for n in fresh {
            self.latest.remove(&n.obj);
        }
    }

    /// The latest record at each address (a later record at the same address replaces the
    /// earlier).
    pub(super) fn latest(&self) -> Vec<Record> {
        self.latest
            .values()
            .map(|&idx| self.records[idx as usize])
            .collect()
    }
}
