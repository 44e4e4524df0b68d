//! Property tests standing in for a fuzzer (cargo-fuzz needs a nightly toolchain this project does
//! not have): no input makes the parser panic, and every problem it reports points inside the file.

use proptest::prelude::*;

const FIXTURES: [&str; 6] = [
    include_str!("../fixtures/dogfooding/switchyard-api.yaml"),
    include_str!("../fixtures/dogfooding/switchyard-ui.yaml"),
    include_str!("../fixtures/dogfooding/plinto.yaml"),
    include_str!("../fixtures/dogfooding/landing-page.yaml"),
    include_str!("../fixtures/dogfooding/docs-site.yaml"),
    include_str!("../fixtures/dogfooding/status-page.yaml"),
];

fn check(text: &str) {
    if let Err(diagnostics) = enclii_spec::parse(text) {
        assert!(!diagnostics.is_empty(), "a refusal always says why");
        let lines = text.lines().count().max(1) + 1;
        for d in diagnostics {
            assert!(d.pos.line >= 1 && d.pos.col >= 1, "{d:?}");
            assert!(
                d.pos.line <= lines,
                "{d:?} is past the end of a {lines}-line file"
            );
            assert!(!d.message.is_empty());
        }
    }
}

/// An edit to a fixture: the kinds of damage hands and tools do to YAML.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    Indent { line: usize, by: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), "[ -~\\n\\t:\\-\\[\\]{}&*!|>'\"#%@`]{0,12}")
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), 1..6usize).prop_map(|(line, by)| Edit::Indent { line, by }),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let boundary = |at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match edit {
        Edit::Delete { at, len } => {
            let start = boundary(*at);
            let end = boundary((start + len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::Insert { at, text: t } => {
            let at = boundary(*at);
            format!("{}{t}{}", &text[..at], &text[at..])
        }
        Edit::DuplicateLine { line } => {
            let lines: Vec<&str> = text.lines().collect();
            let i = line % lines.len().max(1);
            let mut out: Vec<&str> = lines.clone();
            if let Some(l) = lines.get(i) {
                out.insert(i, l);
            }
            out.join("\n")
        }
        Edit::Indent { line, by } => text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == line % text.lines().count().max(1) {
                    format!("{}{l}", " ".repeat(*by))
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,600}") {
        check(&text);
    }

    #[test]
    fn yaml_shaped_noise_never_panics(text in "([a-zA-Z]{1,8}: ?[-\\[\\]{}a-z0-9\"'&*|>]{0,10}\\n {0,6}){0,40}") {
        check(&text);
    }

    #[test]
    fn damaged_fixtures_never_panic(which in 0..6usize, edits in proptest::collection::vec(edit(), 1..6)) {
        let mut text = FIXTURES[which].to_owned();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text);
    }
}

proptest! {
    /// Any schedule text is parsed or refused with a reason, never a panic; a parsed one's next
    /// run is after the time asked about.
    #[test]
    fn any_schedule_parses_or_is_refused(
        fields in proptest::collection::vec("[0-9*/,a-zA-Z?@-]{0,8}", 0..7),
        after in -100_000_000i64..100_000_000i64,
    ) {
        let text = fields.join(" ");
        match enclii_spec::cron::Schedule::parse(&text) {
            Ok(s) => {
                if let Some(next) = s.next_after(after) {
                    prop_assert!(next > after);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
