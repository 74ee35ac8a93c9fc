//! The context a heap walker reads through, passed as one value: the view of the target's
//! memory, the layout that says where every field is, and the type table that names type
//! pointers. The scans judge every block with all three; threading them one by one made
//! parameter lists of seven and more.

use crate::heap::objects::types::TypeTable;
use crate::process::View;
use crate::python::Layout;

pub struct Walk<'a, 'm> {
    pub view: &'a mut View<'m>,
    pub l: &'a Layout,
    pub types: &'a mut TypeTable,
}
