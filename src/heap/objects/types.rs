//! Type objects: validating that a pointer is a real type, naming it exactly as `repr(type)`
//! does, and deciding which `__sizeof__` rule its instances follow. Resolved once per type
//! pointer and cached, so per-object work is a hash lookup.

use crate::heap::objects::pyobj::{dict_get_str, read_str, MAX_NAME};
use crate::heap::objects::type_info::NAMED;
pub use crate::heap::objects::type_info::{Container, SizeRule, TypeInfo};
use crate::process::{Bytes, View};
use crate::python::layout::{flags, Layout};
use crate::python::Python;
use rustc_hash::FxHashMap as HashMap;

/// Builtin leaf types: their bodies hold data, never object pointers.
fn no_pointers(name: &str, tflags: u64) -> bool {
    tflags & flags::HEAPTYPE == 0
        && matches!(
            name,
            "str" | "int" | "bool" | "float" | "bytes" | "complex" | "bytearray"
        )
}

/// Static builtin types we recognise by address, and the size rule of each.
const BUILTIN_RULES: &[(&str, SizeRule)] = &[
    ("PyList_Type", SizeRule::List),
    ("PyDict_Type", SizeRule::Dict),
    ("PyODict_Type", SizeRule::OrderedDict),
    ("PySet_Type", SizeRule::Set),
    ("PyFrozenSet_Type", SizeRule::Set),
    ("PyUnicode_Type", SizeRule::Str),
    ("PyLong_Type", SizeRule::Int),
    ("PyBool_Type", SizeRule::Int),
    ("PyByteArray_Type", SizeRule::ByteArray),
    ("PyType_Type", SizeRule::Type),
    ("PyFrozenDict_Type", SizeRule::Dict),
    ("PyGen_Type", SizeRule::Generator),
    ("PyCoro_Type", SizeRule::Generator),
    ("PyAsyncGen_Type", SizeRule::Generator),
    ("PyFrame_Type", SizeRule::Frame),
    ("PyCode_Type", SizeRule::Code),
];

/// Builtin types that are not exported symbols (or are heap types since 3.12), recognised by
/// their tp_name, which for these is the dotted path set by CPython itself.
const NAMED_RULES: &[(&str, SizeRule)] = &[
    ("collections.deque", SizeRule::Deque),
    ("_io.BufferedReader", SizeRule::Buffered),
    ("_io.BufferedWriter", SizeRule::Buffered),
    ("_io.BufferedRandom", SizeRule::Buffered),
    ("_struct.Struct", SizeRule::Struct),
    ("frozendict", SizeRule::Dict),
    ("array.array", SizeRule::Array),
    ("itertools.combinations", SizeRule::Combinations),
    (
        "itertools.combinations_with_replacement",
        SizeRule::Combinations,
    ),
    ("itertools.permutations", SizeRule::Permutations),
    ("itertools.product", SizeRule::Product),
    ("_io.BytesIO", SizeRule::BytesIO),
    // Objects that own memory outside their allocation (heap::objects::native).
    ("numpy.ndarray", SizeRule::NdArray),
    ("mmap.mmap", SizeRule::Mmap),
    // 3.8's tp_name for _struct.Struct.
    ("Struct", SizeRule::Struct),
];

/// Static types that allocate by their own rule (not inherited: a subclass allocates its
/// tp_basicsize through the generic allocator).
const EXACT_TYPE_RULES: &[(&str, SizeRule)] = &[
    ("datetime.time", SizeRule::NaiveTime),
    ("datetime.datetime", SizeRule::NaiveDateTime),
];

pub struct TypeTable {
    /// Type pointer → its index in `infos` (None: not a type).
    cache: HashMap<u64, Option<u32>>,
    /// Every type met, by the small id the hot loops carry instead of a hash lookup.
    infos: Vec<TypeInfo>,
    builtins: HashMap<u64, SizeRule>,
    type_type: u64,
    str_type: u64,
    /// `method_descriptor`: what a class dict holds for a `__sizeof__` written in C (0 when
    /// the symbol is unknown: then recognised by its tp_name).
    method_descr_type: u64,
    /// Pointers that were not types: counted, never named.
    pub rejected: u64,
}

/// How far up tp_base we look for a builtin base, and how many metatype hops we accept.
const MAX_BASE_DEPTH: usize = 64;
const MAX_META_HOPS: usize = 4;

impl TypeTable {
    pub fn new(py: &Python) -> TypeTable {
        let builtins = BUILTIN_RULES
            .iter()
            .filter_map(|(sym, rule)| Some((py.binary.symbol(sym)?, *rule)))
            .collect();
        TypeTable {
            cache: HashMap::default(),
            infos: Vec::new(),
            builtins,
            type_type: py.type_type,
            str_type: py.binary.symbol("PyUnicode_Type").unwrap_or(0),
            method_descr_type: py.binary.symbol("PyMethodDescr_Type").unwrap_or(0),
            rejected: 0,
        }
    }

    /// The type at `addr`, if it is one. Cached, including the negative answer.
    pub fn get(&mut self, view: &mut View, l: &Layout, addr: u64) -> Option<&TypeInfo> {
        let id = self.id(view, l, addr)?;
        Some(&self.infos[id as usize])
    }

    /// The id of the type at `addr`, if it is one: resolved once, then one hash lookup.
    pub fn id(&mut self, view: &mut View, l: &Layout, addr: u64) -> Option<u32> {
        if let Some(&known) = self.cache.get(&addr) {
            return known;
        }
        let id = match self.load(view, l, addr) {
            Some(info) if self.infos.len() < u32::MAX as usize => {
                self.infos.push(info);
                Some((self.infos.len() - 1) as u32)
            }
            _ => {
                self.rejected += 1;
                None
            }
        };
        self.cache.insert(addr, id);
        id
    }

    /// The type of an id handed out by `id`.
    pub fn info(&self, id: u32) -> &TypeInfo {
        &self.infos[id as usize]
    }

    /// Before another census of a process that kept running: forget addresses that were not
    /// types (a class may have been created there since) and types whose object no longer
    /// looks the same (the class was freed and its memory reused, perhaps by another class).
    /// Types still in place keep their learned names.
    pub fn revalidate(&mut self, view: &mut View, l: &Layout) {
        let t = &l.type_;
        let infos = &self.infos;
        self.cache.retain(|&addr, id| {
            let Some(info) = id.map(|i| &infos[i as usize]) else {
                return false;
            };
            let Ok(b) = view.get(addr, t.type_size as usize) else {
                return false;
            };
            b.u64_at(t.tp_flags as usize) == info.flags
                && b.u64_at(t.tp_basicsize as usize) == info.basicsize
                && b.u64_at(t.tp_itemsize as usize) == info.itemsize
                && b.u64_at(t.tp_name as usize) == info.tp_name
        });
    }

    /// A real type object: its metatype chain reaches `type` within a few hops, and every
    /// metatype along the way says it is a type subclass.
    pub fn is_type(&self, view: &mut View, l: &Layout, addr: u64) -> bool {
        let mut cur = addr;
        for _ in 0..MAX_META_HOPS {
            if cur == 0 || !cur.is_multiple_of(8) {
                return false;
            }
            let Some(meta) = view.u64(cur.wrapping_add(l.ob_type)) else {
                return false;
            };
            if meta == self.type_type {
                return true;
            }
            let Some(mflags) = view.u64(meta.wrapping_add(l.type_.tp_flags)) else {
                return false;
            };
            if mflags & flags::TYPE_SUBCLASS == 0 {
                return false;
            }
            cur = meta;
        }
        false
    }

    fn load(&mut self, view: &mut View, l: &Layout, addr: u64) -> Option<TypeInfo> {
        if !self.is_type(view, l, addr) {
            return None;
        }
        let t = &l.type_;
        let b = view.get(addr, t.type_size as usize).ok()?.to_vec();
        let tflags = b.u64_at(t.tp_flags as usize);
        let basicsize = b.u64_at(t.tp_basicsize as usize);
        let itemsize = b.u64_at(t.tp_itemsize as usize);
        if basicsize == 0 || basicsize > (1 << 24) || itemsize > (1 << 16) {
            return None;
        }
        let tp_name = b.u64_at(t.tp_name as usize);
        let name = self.name(view, l, addr, tflags, tp_name)?;
        let owns_fd = self.has_base_named(view, l, addr, &["_io.FileIO", "_socket.socket"]);
        let rule = self.rule(view, l, addr);
        let python_sizeof = tflags & flags::HEAPTYPE != 0 && self.python_sizeof(view, l, addr);
        let (container, own_from) = self.container(view, l, addr);
        let weaklist = b.i64_at(t.tp_weaklistoffset as usize);
        let weaklist = if weaklist > 0 { weaklist as u64 } else { 0 };
        let scan_body = !no_pointers(&name, tflags);
        let leaf = (matches!(rule, SizeRule::Str | SizeRule::Int) || !scan_body)
            && tflags & flags::MANAGED_DICT == 0;
        Some(TypeInfo {
            owns_fd,
            addr,
            scan_body,
            leaf,
            tp_name,
            name: name.into(),
            flags: tflags,
            basicsize,
            itemsize,
            rule,
            python_sizeof,
            preheader: l.preheader_size(tflags),
            container,
            own_from,
            weaklist,
        })
    }

    /// The text inside the quotes of `repr(type)`: `module.qualname`, without `builtins.`.
    fn name(
        &self,
        view: &mut View,
        l: &Layout,
        addr: u64,
        tflags: u64,
        tp_name: u64,
    ) -> Option<String> {
        if tflags & flags::HEAPTYPE == 0 {
            // Static types print tp_name as is ("collections.OrderedDict", "dict").
            let raw = view.cstr(tp_name, MAX_NAME as usize)?;
            return String::from_utf8(raw).ok();
        }
        let t = &l.type_;
        let qual_ptr = view.u64(addr.wrapping_add(t.ht_qualname))?;
        let qualname = if self.is_str(view, l, qual_ptr) {
            read_str(view, l, qual_ptr, MAX_NAME)?
        } else {
            String::from_utf8(view.cstr(tp_name, MAX_NAME as usize)?).ok()?
        };
        let dict = view.u64(addr.wrapping_add(t.tp_dict)).unwrap_or(0);
        let module = if dict != 0 {
            dict_get_str(view, l, dict, "__module__")
                .filter(|m| self.is_str(view, l, *m))
                .and_then(|m| read_str(view, l, m, MAX_NAME))
        } else {
            None
        };
        // type_repr falls back to tp_name as is when `__module__` is missing, not a str
        // (Cython's shared types keep a member descriptor there) or "builtins".
        match module.as_deref() {
            Some("builtins") | None => String::from_utf8(view.cstr(tp_name, MAX_NAME as usize)?)
                .ok()
                .or(Some(qualname)),
            Some(m) => Some(format!("{m}.{qualname}")),
        }
    }

    fn is_str(&self, view: &mut View, l: &Layout, obj: u64) -> bool {
        obj != 0 && view.u64(obj.wrapping_add(l.ob_type)) == Some(self.str_type)
    }

    /// Whether the type or one of its bases has one of these tp_names.
    fn has_base_named(&self, view: &mut View, l: &Layout, addr: u64, names: &[&str]) -> bool {
        let mut cur = addr;
        for _ in 0..MAX_BASE_DEPTH {
            let name = view
                .u64(cur.wrapping_add(l.type_.tp_name))
                .and_then(|p| view.cstr(p, 64));
            if name.is_some_and(|n| names.iter().any(|w| w.as_bytes() == n)) {
                return true;
            }
            match view.u64(cur.wrapping_add(l.type_.tp_base)) {
                Some(base) if base != 0 => cur = base,
                _ => return false,
            }
        }
        false
    }

    /// Does the first class of the type's MRO that defines `__sizeof__` define it as anything
    /// but a builtin method descriptor? Static types end the search: their `__sizeof__` is C
    /// (and 3.12+ keep their dict elsewhere). Unreadable parts answer no.
    fn python_sizeof(&self, view: &mut View, l: &Layout, addr: u64) -> bool {
        let t = &l.type_;
        let Some(mro) = view.u64(addr.wrapping_add(t.tp_mro)).filter(|&m| m != 0) else {
            return false;
        };
        let n = view
            .u64(mro.wrapping_add(l.ob_size))
            .unwrap_or(0)
            .min(MAX_BASE_DEPTH as u64);
        for i in 0..n {
            let Some(class) = view.u64(mro.wrapping_add(l.tuple_items + 8 * i)) else {
                return false;
            };
            let heap = view
                .u64(class.wrapping_add(t.tp_flags))
                .is_some_and(|f| f & flags::HEAPTYPE != 0);
            if !heap {
                return false;
            }
            let dict = view.u64(class.wrapping_add(t.tp_dict)).unwrap_or(0);
            if dict == 0 {
                continue;
            }
            if let Some(v) = dict_get_str(view, l, dict, "__sizeof__") {
                let Some(vt) = view.u64(v.wrapping_add(l.ob_type)) else {
                    return false;
                };
                if self.method_descr_type != 0 {
                    return vt != self.method_descr_type;
                }
                let name = view
                    .u64(vt.wrapping_add(t.tp_name))
                    .and_then(|p| view.cstr(p, 64));
                return name.is_some_and(|n| n != b"method_descriptor");
            }
        }
        false
    }

    /// The nearest base whose layout `heap::objects::containers` models, and its basicsize.
    fn container(&self, view: &mut View, l: &Layout, addr: u64) -> (Container, u64) {
        let mut cur = addr;
        for _ in 0..MAX_BASE_DEPTH {
            let builtin = self.builtins.get(&cur).is_some_and(|r| {
                matches!(
                    r,
                    SizeRule::List | SizeRule::Dict | SizeRule::OrderedDict | SizeRule::Set
                )
            });
            let found = if builtin {
                Some(Container::Builtin)
            } else {
                view.u64(cur.wrapping_add(l.type_.tp_name))
                    .and_then(|p| view.cstr(p, 64))
                    .and_then(|name| {
                        NAMED
                            .iter()
                            .find(|(n, _)| n.as_bytes() == name)
                            .map(|(_, c)| *c)
                    })
            };
            if let Some(c) = found {
                let size = view
                    .u64(cur.wrapping_add(l.type_.tp_basicsize))
                    .unwrap_or(0);
                return (c, size);
            }
            match view.u64(cur.wrapping_add(l.type_.tp_base)) {
                Some(base) if base != 0 => cur = base,
                _ => break,
            }
        }
        (Container::None, 0)
    }

    /// The size rule of the nearest builtin base (heap subclasses inherit `__sizeof__`).
    fn rule(&self, view: &mut View, l: &Layout, addr: u64) -> SizeRule {
        let static_name = |view: &mut View, cur: u64| {
            let tflags = view.u64(cur.wrapping_add(l.type_.tp_flags))?;
            if tflags & flags::HEAPTYPE != 0 {
                return None;
            }
            view.u64(cur.wrapping_add(l.type_.tp_name))
                .and_then(|p| view.cstr(p, 64))
        };
        if let Some(name) = static_name(view, addr) {
            if let Some((_, rule)) = EXACT_TYPE_RULES.iter().find(|(n, _)| n.as_bytes() == name) {
                return *rule;
            }
        }
        let mut cur = addr;
        for _ in 0..MAX_BASE_DEPTH {
            if let Some(rule) = self.builtins.get(&cur) {
                return *rule;
            }
            if let Some(name) = view
                .u64(cur.wrapping_add(l.type_.tp_name))
                .and_then(|p| view.cstr(p, 64))
            {
                // An undotted name is a builtin's only on a static type (a class may be called
                // "Struct").
                let named = NAMED_RULES.iter().find(|(n, _)| {
                    n.as_bytes() == name
                        && (n.contains('.') || static_name(view, cur).is_some_and(|s| s == name))
                });
                if let Some((_, rule)) = named {
                    return *rule;
                }
            }
            match view.u64(cur.wrapping_add(l.type_.tp_base)) {
                Some(base) if base != 0 => cur = base,
                _ => break,
            }
        }
        SizeRule::Generic
    }
}
