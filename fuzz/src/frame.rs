//! Several byte strings in one fuzz input: each part is a 4-byte little-endian length and that
//! many bytes. Decoding never fails: a length past the end takes what is left, so every input is
//! some list of parts and the fuzzer can grow, shrink and splice them freely. Seeds are written
//! with [`join`].

/// The parts of `data` (at most `max` of them; the last takes any rest).
pub fn split(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && parts.len() < max {
        if parts.len() + 1 == max || rest.len() < 4 {
            parts.push(rest);
            break;
        }
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (part, tail) = tail.split_at(len.min(tail.len()));
        parts.push(part);
        rest = tail;
    }
    parts
}

/// The input whose [`split`] is `parts` (when there are fewer than its `max`).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Part `i`, or empty.
pub fn part<'a>(parts: &[&'a [u8]], i: usize) -> &'a [u8] {
    parts.get(i).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_then_split() {
        let parts: [&[u8]; 3] = [b"abc", b"", b"xyzw"];
        assert_eq!(split(&join(&parts), 8), parts);
        // The last allowed part takes the rest, framing and all.
        let joined = join(&parts);
        assert_eq!(split(&joined, 1), [&joined[..]]);
        // Truncated lengths and short tails never fail.
        assert_eq!(split(&[9, 0, 0, 0, 1], 4), [&[1u8][..]]);
        assert_eq!(split(&[1, 2], 4), [&[1u8, 2][..]]);
    }
}
