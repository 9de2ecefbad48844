//! Run ids: short random names that tag every process, namespace and file of one run.

/// A fresh run id: 6 characters of `[a-z0-9]`, random enough to tell concurrent runs apart.
pub fn generate_run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..6]
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Whether `id` has the run-id shape (`[a-z0-9]{6}`); names built from it must stay short.
pub fn is_valid_run_id(id: &str) -> bool {
    id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_differ() {
        let a = generate_run_id();
        let b = generate_run_id();
        assert!(is_valid_run_id(&a), "{a}");
        assert!(is_valid_run_id(&b), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for id in ["", "abc", "ABCDEF", "abc-ef", "abcdefg", "abc def"] {
            assert!(!is_valid_run_id(id), "{id}");
        }
    }
}
