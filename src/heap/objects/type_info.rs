//! What a type is, once `types` has read it: its `TypeInfo`, the `__sizeof__` rule its
//! instances follow and the C container base whose fields are followed exactly. Plain data, so
//! that the readers of one object (`pyobj`, `containers`, `sizes`, `native`) depend on it and
//! not on the type table, which depends on them.

use std::rc::Rc;

/// Which `__sizeof__` an instance's size follows (the nearest builtin base decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRule {
    /// object.__sizeof__: basicsize + |ob_size| * itemsize.
    Generic,
    List,
    Dict,
    OrderedDict,
    Set,
    Str,
    Int,
    ByteArray,
    Type,
    /// collections.deque: basicsize plus its 64-slot blocks.
    Deque,
    /// _io.Buffered*: basicsize plus the buffer.
    Buffered,
    /// _struct.Struct: basicsize plus one 32-byte format code per code, and the terminator.
    Struct,
    /// Generators, coroutines, async generators: 3.11+ their embedded frame (see
    /// `FrameSizing`); before, object.__sizeof__.
    Generator,
    /// Frame objects: the slots of the code they run.
    Frame,
    /// array.array: basicsize plus allocated items of its typecode's size.
    Array,
    /// itertools.combinations (and _with_replacement): one index per element of a result.
    Combinations,
    /// itertools.permutations: one index per pool item and one cycle counter per result item.
    Permutations,
    /// itertools.product: one index per pool.
    Product,
    /// _io.BytesIO: basicsize plus its bytes buffer unless shared.
    BytesIO,
    /// Code objects: the variable size rounded up (3.11+) or cell-to-argument map (3.8–3.10),
    /// plus co_extra.
    Code,
    /// datetime.time and datetime.datetime: object.__sizeof__, but a naive instance allocates
    /// less than tp_basicsize.
    NaiveTime,
    NaiveDateTime,
    /// numpy.ndarray: basicsize, dimensions and strides, and the data it owns (heap::objects::native).
    NdArray,
    /// mmap.mmap: basicsize only (the mapping is native memory, not in sys.getsizeof).
    Mmap,
}

#[derive(Debug, Clone)]
pub struct TypeInfo {
    pub addr: u64,
    /// Shared: cloned per object in hot loops.
    pub name: Rc<str>,
    pub flags: u64,
    pub basicsize: u64,
    pub itemsize: u64,
    pub rule: SizeRule,
    /// Bytes before the object (GC head, managed dict/weakref slots).
    pub preheader: u64,
    /// False for types whose instances hold no object pointers (str, int, float, bytes).
    pub scan_body: bool,
    /// Instances refer to no object but their type (no pointer fields, no managed dict): the
    /// referent pass has nothing to read in them.
    pub leaf: bool,
    /// The tp_name pointer when loaded: part of what tells a reused address from the same type.
    pub tp_name: u64,
    /// Instances own a file descriptor (an int right after the header): _io.FileIO and
    /// _socket.socket, and their subclasses.
    pub owns_fd: bool,
    /// `sys.getsizeof` of an instance calls a `__sizeof__` written in Python (a class of the
    /// MRO defines it as a function, as pandas does): no outside reader can run it, so `bytes`
    /// follows the builtin base's rule instead and says so.
    pub python_sizeof: bool,
    /// The C container base whose fields are followed exactly (see `heap::objects::containers`).
    pub container: Container,
    /// Where the words a Python subclass added (`__slots__`, dict and weakref pointers) start:
    /// the modelled base's basicsize. Only meaningful when `container` is not `None`.
    pub own_from: u64,
    /// tp_weaklistoffset when it lies inside the object (0 otherwise): the head of the list of
    /// weak references to the object, which the object does not own.
    pub weaklist: u64,
}

/// Which modelled C base a type has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Nothing modelled: the body is scanned conservatively.
    None,
    /// The builtin list, dict, set: items followed exactly (`SizeRule` says which).
    Builtin,
    Deque,
    DefaultDict,
    Partial,
    LruCache,
    ThreadLocal,
    /// weakref.ref, proxies and their subclasses (KeyedRef, WeakMethod): the referent is not
    /// held; the callback and subclass slots are.
    Weakref,
    /// generator, coroutine, async_generator: 3.11+ embed their frame, whose value stack above
    /// the stack top holds stale pointers; only live slots are references.
    Generator,
}

/// tp_name of each modelled base. Weak reference types were renamed in 3.10.
pub const NAMED: &[(&str, Container)] = &[
    ("collections.deque", Container::Deque),
    ("collections.defaultdict", Container::DefaultDict),
    ("functools.partial", Container::Partial),
    ("functools._lru_cache_wrapper", Container::LruCache),
    ("_thread._local", Container::ThreadLocal),
    ("weakref.ReferenceType", Container::Weakref),
    ("weakref.ProxyType", Container::Weakref),
    ("weakref.CallableProxyType", Container::Weakref),
    ("weakref", Container::Weakref),
    ("weakproxy", Container::Weakref),
    ("weakcallableproxy", Container::Weakref),
    ("generator", Container::Generator),
    ("coroutine", Container::Generator),
    ("async_generator", Container::Generator),
];
