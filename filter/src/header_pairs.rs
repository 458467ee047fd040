//! The proxy-wasm ABI's header map encoding, used by `proxy_get_header_map_pairs` and
//! `proxy_send_local_response`: a little-endian u32 count, then a (name size, value size)
//! u32 pair per header, then each name and value followed by a NUL. Kept apart from the
//! adapter so it is tested natively.

/// Decodes a header map. `None` when the bytes do not follow the encoding.
pub fn decode(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?)).ok()
    };
    let count = word(0)?;
    if count > bytes.len() / 8 {
        return None;
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let name_size = word(4 + i * 8)?;
        let value_size = word(8 + i * 8)?;
        let name = bytes.get(at..at.checked_add(name_size)?)?;
        at = at.checked_add(name_size)?.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(value_size)?)?;
        at = at.checked_add(value_size)?.checked_add(1)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

/// Encodes a header map.
pub fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&len(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = [
            ("www-authenticate", "Bearer x"),
            ("www-authenticate", ""),
            ("a", "b"),
        ];
        let bytes = encode(&pairs);
        let back = decode(&bytes).unwrap();
        let back: Vec<(&str, &str)> = back
            .iter()
            .map(|(k, v)| {
                (
                    std::str::from_utf8(k).unwrap(),
                    std::str::from_utf8(v).unwrap(),
                )
            })
            .collect();
        assert_eq!(back, pairs);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<(&[u8], &[u8])>::new());
    }

    #[test]
    fn truncated_or_lying_maps_are_refused() {
        let bytes = encode(&[("name", "value")]);
        for cut in 0..bytes.len() - 1 {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_none());
        let mut huge = bytes.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_none());
    }
}
