//! LEB128 varints: 7 bits a byte, low bits first, the high bit set on every byte but the
//! last. The compact queues and lists of the retention analyses keep small numbers (distances
//! between nearby object indexes) in a byte or two this way.

/// How many bytes `v` takes.
pub fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// `v`'s bytes, in order, to `emit`.
pub fn put(mut v: u64, mut emit: impl FnMut(u8)) {
    while v >= 0x80 {
        emit((v as u8) | 0x80);
        v >>= 7;
    }
    emit(v as u8);
}

/// The number whose bytes `next` gives (None when they end first). At most 10 bytes are read:
/// what a u64 takes.
pub fn take(mut next: impl FnMut() -> Option<u8>) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let b = next()?;
        v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_length_it_says() {
        for v in [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            1 << 35,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut bytes = Vec::new();
            put(v, |b| bytes.push(b));
            assert_eq!(bytes.len(), len(v), "{v}");
            let mut it = bytes.into_iter();
            assert_eq!(take(|| it.next()), Some(v));
        }
        assert_eq!(take(|| None), None);
    }
}
