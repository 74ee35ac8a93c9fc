//! Which source line a bytecode offset belongs to, from a code object's line table.
//!
//! Three encodings (see `LineFormat`): 3.8/3.9 `co_lnotab`, 3.10 `co_linetable` (PEP 626) and the
//! 3.11+ location table. Each is decoded once per code object into sorted ranges, so that a
//! frame's line costs a binary search per sample. The bytes come from the target: decoding is
//! bounded by their length and never panics; offsets past the table give no line.

use crate::python::frames_layout::LineFormat;

/// Largest line table we decode (a code object of a few hundred thousand instructions).
pub const MAX_TABLE_BYTES: u64 = 1 << 20;

/// Byte ranges of the bytecode and their lines: `ends[i]` is the end (exclusive) of range i,
/// which starts where range i-1 ends; `lines[i]` is its line (0: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineTable {
    ends: Vec<u32>,
    lines: Vec<u32>,
}

impl LineTable {
    pub fn decode(format: LineFormat, table: &[u8], first_line: u32) -> LineTable {
        match format {
            LineFormat::Lnotab => lnotab(table, first_line),
            LineFormat::Pep626 => pep626(table, first_line),
            LineFormat::Locations => locations(table, first_line),
        }
    }

    /// The line of the instruction at this byte offset (0: unknown).
    pub fn line_at(&self, offset: u64) -> u32 {
        let Ok(offset) = u32::try_from(offset) else {
            return 0;
        };
        let i = self.ends.partition_point(|&end| end <= offset);
        self.lines.get(i).copied().unwrap_or(0)
    }

    /// The highest line any instruction is on (0: none).
    pub fn last_line(&self) -> u32 {
        self.lines.iter().copied().max().unwrap_or(0)
    }

    fn push(&mut self, end: u32, line: i64) {
        self.ends.push(end);
        self.lines
            .push(u32::try_from(line).ok().filter(|&l| l > 0).unwrap_or(0));
    }
}

/// 3.8/3.9: pairs (bytecode increment, signed line increment); a line applies from the address
/// its increments reach up to the next pair's address (CPython's `PyCode_Addr2Line`).
fn lnotab(t: &[u8], first_line: u32) -> LineTable {
    let mut out = LineTable::default();
    let mut line = i64::from(first_line);
    let mut addr: u32 = 0;
    for pair in t.chunks_exact(2) {
        let next = addr.saturating_add(u32::from(pair[0]));
        if next > addr {
            out.push(next, line);
        }
        addr = next;
        line += i64::from(pair[1] as i8);
    }
    out.push(u32::MAX, line);
    out
}

/// 3.10: pairs (bytecode length, signed line delta; -128: no line), each one range.
fn pep626(t: &[u8], first_line: u32) -> LineTable {
    let mut out = LineTable::default();
    let mut line = i64::from(first_line);
    let mut end: u32 = 0;
    for pair in t.chunks_exact(2) {
        end = end.saturating_add(u32::from(pair[0]));
        let delta = pair[1] as i8;
        let this = if delta == -128 {
            0
        } else {
            line += i64::from(delta);
            line
        };
        out.push(end, this);
    }
    out
}

/// 3.11+: entries of a first byte (bit 7 set, a 4-bit code, length-1 in code units) and the
/// code's extra varints; codes 0–9 keep the line, 10–12 add code-10, 13 and 14 add a signed
/// varint, 15 has no line.
fn locations(t: &[u8], first_line: u32) -> LineTable {
    let mut out = LineTable::default();
    let mut line = i64::from(first_line);
    let mut end: u32 = 0;
    let mut r = Reader { t, at: 0 };
    while let Some(first) = r.byte() {
        if first & 0x80 == 0 {
            break; // lost sync: what follows is not trusted
        }
        let code = (first >> 3) & 15;
        end = end.saturating_add((u32::from(first & 7) + 1) * 2);
        let this = match code {
            15 => 0,
            14 => {
                line += r.svarint();
                // end line, column, end column
                r.varint();
                r.varint();
                r.varint();
                line
            }
            13 => {
                line += r.svarint();
                line
            }
            10..=12 => {
                line += i64::from(code - 10);
                r.byte();
                r.byte();
                line
            }
            _ => {
                r.byte();
                line
            }
        };
        out.push(end, this);
    }
    out
}

struct Reader<'a> {
    t: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.t.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// 6 bits per byte, low first; bit 6 says another byte follows.
    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        while let Some(b) = self.byte() {
            if shift < 64 {
                v |= u64::from(b & 63) << shift;
            }
            shift += 6;
            if b & 64 == 0 {
                break;
            }
        }
        v
    }

    fn svarint(&mut self) -> i64 {
        let v = self.varint();
        let mag = (v >> 1).min(i64::MAX as u64) as i64;
        if v & 1 == 1 {
            -mag
        } else {
            mag
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_lines_start_where_their_increments_reach() {
        // def f(): (line 10) ; bytes 0-5 line 11, 6-11 line 12, 12.. line 14
        let t = LineTable::decode(LineFormat::Lnotab, &[0, 1, 6, 1, 6, 2], 10);
        assert_eq!(t.line_at(0), 11);
        assert_eq!(t.line_at(5), 11);
        assert_eq!(t.line_at(6), 12);
        assert_eq!(t.line_at(12), 14);
        assert_eq!(t.line_at(400), 14);
    }

    #[test]
    fn pep626_ranges_and_missing_lines() {
        // 4 bytes at +1, 2 bytes without a line, 6 bytes at +2 (from the last line)
        let t = LineTable::decode(LineFormat::Pep626, &[4, 1, 2, 0x80, 6, 2], 20);
        assert_eq!(t.line_at(0), 21);
        assert_eq!(t.line_at(3), 21);
        assert_eq!(t.line_at(4), 0);
        assert_eq!(t.line_at(6), 23);
        assert_eq!(t.line_at(11), 23);
        assert_eq!(t.line_at(12), 0);
    }

    #[test]
    fn location_table_codes() {
        let table = [
            0x80 | (13 << 3), // 1 unit, no columns, line +0 (svarint 0)
            0,
            0x80 | (11 << 3) | 1, // 2 units, one-line form, line +1, 2 column bytes
            5,
            9,
            0x80 | (15 << 3), // 1 unit, no location
            0x80 | (14 << 3), // 1 unit, long form: line +3 (svarint 6), end, col, endcol
            6,
            0,
            1,
            2,
            0x80 | (13 << 3), // line -2 (svarint 5)
            5,
            0x80 | (2 << 3), // short form: same line, 1 column byte
            7,
        ];
        let t = LineTable::decode(LineFormat::Locations, &table, 50);
        let lines: Vec<u32> = (0..8).map(|u| t.line_at(u * 2)).collect();
        assert_eq!(lines, [50, 51, 51, 0, 54, 52, 52, 0]);
    }

    #[test]
    fn hostile_tables_do_not_panic() {
        for format in [
            LineFormat::Lnotab,
            LineFormat::Pep626,
            LineFormat::Locations,
        ] {
            for t in [
                &[][..],
                &[0xff; 7],
                &[0x80 | (14 << 3), 0xff, 0xff],
                &[0, 0x80],
            ] {
                let lt = LineTable::decode(format, t, u32::MAX);
                let _ = lt.line_at(u64::MAX);
                let _ = lt.line_at(0);
            }
        }
    }
}
