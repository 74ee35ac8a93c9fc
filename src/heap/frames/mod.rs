//! Threads and their frames: stacks (`stacks`), the slots of a frame (`frame_slots`), line tables (`line_table`), how a frame's file is shown (`file_names`).

pub mod file_names;
pub mod frame_slots;
pub mod line_table;
pub mod stacks;
