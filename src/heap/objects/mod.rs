//! One object read: its header and type (`pyobj`, `types`), its size (`sizes`, `native` buffers), the items of containers (`containers`).

pub mod containers;
pub mod native;
pub mod pyobj;
pub mod sizes;
pub mod type_info;
pub mod types;
