//! The loader never panics: not on arbitrary text, not on arbitrary edits of valid scenarios.

use std::path::Path;

use proptest::prelude::*;

fn valid_sources() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    podid_scenario::discover(&[dir])
        .unwrap()
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = podid_scenario::load_str(Path::new("fuzz.yaml"), &text);
    }

    #[test]
    fn yamlish_text_never_panics(text in "([a-zA-Z${}:\\[\\]\\-\\. #'\"\n]|  ){0,300}") {
        let _ = podid_scenario::load_str(Path::new("fuzz.yaml"), &text);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, "\\PC{0,12}"), 1..6),
    ) {
        let sources = valid_sources();
        let mut text = sources[pick.index(sources.len())].clone().into_bytes();
        for (at, kind, insert) in edits {
            let i = at.index(text.len() + 1).min(text.len());
            match kind {
                0 => { text.splice(i..i, insert.bytes()); }
                1 => { let end = (i + insert.len()).min(text.len()); text.drain(i..end); }
                2 => { let end = (i + 1).min(text.len()); text.splice(i..end, insert.bytes()); }
                _ => { let line_end = text[i..].iter().position(|b| *b == b'\n').map(|p| i + p).unwrap_or(text.len()); text.drain(i..line_end); }
            }
        }
        let text = String::from_utf8_lossy(&text).to_string();
        let _ = podid_scenario::load_str(Path::new("fuzz.yaml"), &text);
    }
}
