//! The README's embedded programs are `examples/`, word for word: CI runs
//! the examples, so the README's code is code that runs.

#[test]
fn the_readme_shows_each_example_word_for_word() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
    for example in ["embedded_blocking.rs", "embedded_async.rs"] {
        let marker = format!("<!-- jubilant/examples/{example} -->\n```rust\n");
        let start = readme
            .find(&marker)
            .unwrap_or_else(|| panic!("the README has no block for {example}"))
            + marker.len();
        let end = start + readme[start..].find("```\n").expect("the block is closed");
        let code = std::fs::read_to_string(root.join("examples").join(example)).expect("example");
        assert_eq!(
            &readme[start..end],
            code,
            "README.md's block differs from examples/{example}: copy the example into it"
        );
    }
}
