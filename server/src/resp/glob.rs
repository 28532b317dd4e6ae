//! Redis's glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`,
//! `[^a-z]` and `\` escapes, over bytes.
//!
//! Invariant kept here: **linear in the pattern times the key**, whatever
//! the pattern: one backtracking point (the last `*`), never recursion, so
//! a hostile pattern cannot stall a connection or overflow the stack.

/// Whether `key` matches `pattern`.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the
    // key position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'[' => {
                    if let Some((hit, next)) = class(pattern, p, key[k])
                        && hit
                    {
                        p = next;
                        k += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == key[k] {
                        p += 2;
                        k += 1;
                        continue;
                    }
                }
                literal => {
                    if literal == key[k] {
                        p += 1;
                        k += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((after, swallowed)) => {
                p = after;
                k = swallowed + 1;
                star = Some((after, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The bytes every key matching `pattern` begins with: the pattern up to
/// its first special byte (`*`, `?`, `[`, `\`), so a scan can start there
/// and stop where the prefix ends.
pub fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

/// A `[...]` class at `pattern[start]`: whether `byte` is in it, and where
/// the pattern goes on; `None` if the class is not closed (then `[` is
/// matched as itself, as Redis does at the pattern's end).
fn class(pattern: &[u8], start: usize, byte: u8) -> Option<(bool, usize)> {
    let mut p = start + 1;
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        let &c = pattern.get(p)?;
        if c == b']' {
            return Some((hit != negate, p + 1));
        }
        if c == b'\\' && p + 1 < pattern.len() {
            hit |= pattern[p + 1] == byte;
            p += 2;
        } else if pattern.get(p + 1) == Some(&b'-')
            && p + 2 < pattern.len()
            && pattern[p + 2] != b']'
        {
            let (mut low, mut high) = (c, pattern[p + 2]);
            if low > high {
                std::mem::swap(&mut low, &mut high);
            }
            hit |= (low..=high).contains(&byte);
            p += 3;
        } else {
            hit |= c == byte;
            p += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{literal_prefix, matches};

    #[test]
    fn the_literal_prefix_stops_at_the_first_special_byte() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"user:1?"), b"user:1");
        assert_eq!(literal_prefix(b"a[bc]"), b"a");
        assert_eq!(literal_prefix(b"a\\*b"), b"a");
        assert_eq!(literal_prefix(b"exact"), b"exact");
        assert_eq!(literal_prefix(b"*"), b"");
        for (pattern, key) in [(&b"user:*"[..], &b"user:7"[..]), (b"ab?", b"abc")] {
            assert!(matches(pattern, key) && key.starts_with(literal_prefix(pattern)));
        }
    }

    #[test]
    fn patterns_match_as_in_redis() {
        let yes: &[(&[u8], &[u8])] = &[
            (b"*", b""),
            (b"*", b"anything"),
            (b"user:*", b"user:42"),
            (b"h?llo", b"hello"),
            (b"h[ae]llo", b"hallo"),
            (b"h[^e]llo", b"hallo"),
            (b"h[a-b]llo", b"hbllo"),
            (b"a\\*b", b"a*b"),
            (b"*x*y*", b"..x..y.."),
            (b"k\x00*", b"k\x00\xff"),
        ];
        for (pattern, key) in yes {
            assert!(matches(pattern, key), "{pattern:?} {key:?}");
        }
        let no: &[(&[u8], &[u8])] = &[
            (b"user:*", b"users"),
            (b"h?llo", b"hllo"),
            (b"h[^e]llo", b"hello"),
            (b"a\\*b", b"axb"),
            (b"*x*y", b"..y..x"),
        ];
        for (pattern, key) in no {
            assert!(!matches(pattern, key), "{pattern:?} {key:?}");
        }
        let long = vec![b'a'; 10_000];
        assert!(!matches(
            &[b'*'; 100].iter().chain(b"b").copied().collect::<Vec<_>>(),
            &long
        ));
    }
}
