use super::*;

fn words(line: &str) -> Vec<Vec<String>> {
    parse(line, 0).expect("parses").expect("not blank").commands
}

fn one(line: &str) -> Vec<String> {
    let mut commands = words(line);
    assert_eq!(commands.len(), 1, "{line:?}");
    commands.remove(0)
}

#[test]
fn splits_on_spaces_and_tabs() {
    assert_eq!(one("  ns \t -a  "), ["ns", "-a"]);
}

#[test]
fn blank_lines_have_no_pipeline() {
    assert_eq!(parse("", 0), Ok(None));
    assert_eq!(parse("   \t ", 0), Ok(None));
}

#[test]
fn single_quotes_are_literal() {
    assert_eq!(one(r#"echo 'a b' 'x\"$?'"#), ["echo", "a b", r#"x\"$?"#]);
}

#[test]
fn double_quotes_keep_spaces_and_handle_escapes() {
    assert_eq!(one(r#"echo "a b" "q\"q" "b\\s" "\$?" "\n""#), ["echo", "a b", "q\"q", "b\\s", "$?", "\\n"]);
}

#[test]
fn empty_quotes_make_an_empty_word() {
    assert_eq!(one(r#"echo "" ''"#), ["echo", "", ""]);
}

#[test]
fn quotes_join_adjacent_text() {
    assert_eq!(one(r#"a"b c"'d'e"#), ["ab cde"]);
}

#[test]
fn backslash_outside_quotes_escapes() {
    assert_eq!(one(r"echo a\ b \| \&"), ["echo", "a b", "|", "&"]);
    assert_eq!(parse("echo a\\", 0), Err(ParseError::TrailingBackslash));
}

#[test]
fn status_expands_outside_single_quotes() {
    let pipeline = parse("x $? \"s=$?\" '$?' $?$?", -3).unwrap().unwrap();
    assert_eq!(pipeline.commands, [["x", "-3", "s=-3", "$?", "-3-3"]]);
    // An unset variable expands to nothing; a lone `$` stays.
    assert_eq!(one("echo $ $x"), ["echo", "$"]);
}

/// The variables the expansion tests see.
fn lookup(name: &str) -> Option<String> {
    match name {
        "NAME" => Some(String::from("world")),
        "SPACED" => Some(String::from("a  b")),
        "EMPTY" => Some(String::new()),
        "_x1" => Some(String::from("under")),
        _ => None,
    }
}

fn expanded(line: &str) -> Vec<Vec<String>> {
    parse_with(line, 7, &lookup).expect("parses").expect("not blank").commands
}

#[test]
fn variables_expand_outside_single_quotes() {
    assert_eq!(
        expanded("echo $NAME ${NAME} \"hi $NAME\" '$NAME' \\$NAME"),
        [["echo", "world", "world", "hi world", "$NAME", "$NAME"]]
    );
    assert_eq!(
        expanded("echo ${NAME}s $NAME.txt x$_x1$? \"\\$NAME\""),
        [["echo", "worlds", "world.txt", "xunder7", "$NAME"]]
    );
}

#[test]
fn expansions_are_not_split_and_unset_is_nothing() {
    assert_eq!(expanded("echo $SPACED"), [["echo", "a  b"]]);
    assert_eq!(expanded("echo $UNSET end"), [["echo", "end"]]);
    assert_eq!(expanded("echo $EMPTY \"$UNSET\" end"), [["echo", "", "end"]]);
    assert_eq!(expanded("$NAME | x"), [["world"], ["x"]]);
    assert_eq!(expanded("echo $1 $- $"), [["echo", "$1", "$-", "$"]]);
}

#[test]
fn bad_substitutions_are_errors() {
    for line in ["echo ${NAME", "echo ${}", "echo ${1x}", "echo ${NA ME}", "echo ${", "echo \"${\""] {
        let position = line.find('$').expect("has a $");
        assert_eq!(parse_with(line, 0, &lookup), Err(ParseError::BadSubstitution { position }), "{line:?}");
    }
}

#[test]
fn variable_names() {
    assert!(is_variable_name("PATH") && is_variable_name("_") && is_variable_name("a_1"));
    assert!(!is_variable_name("") && !is_variable_name("1a") && !is_variable_name("a-b") && !is_variable_name("é"));
}

#[test]
fn unterminated_quotes_are_errors() {
    assert_eq!(parse("echo 'abc", 0), Err(ParseError::UnterminatedQuote { quote: '\'', position: 5 }));
    assert_eq!(parse("echo a\"b", 0), Err(ParseError::UnterminatedQuote { quote: '"', position: 6 }));
    let message = alloc::format!("{}", parse("x \"", 0).unwrap_err());
    assert_eq!(message, "unterminated \" quote opened at column 3");
}

#[test]
fn pipes_split_commands() {
    assert_eq!(words("hello | upper|count"), [vec!["hello"], vec!["upper"], vec!["count"]]);
    assert_eq!(words("a '|' b"), [vec!["a", "|", "b"]]);
}

#[test]
fn empty_pipe_sides_are_errors() {
    assert_eq!(parse("| a", 0), Err(ParseError::EmptyCommand { position: 0 }));
    assert_eq!(parse("a | | b", 0), Err(ParseError::EmptyCommand { position: 4 }));
    assert_eq!(parse("a |", 0), Err(ParseError::EmptyCommand { position: 2 }));
}

#[test]
fn trailing_ampersand_means_background() {
    let pipeline = parse("load 4 2 &  ", 0).unwrap().unwrap();
    assert!(pipeline.background);
    assert_eq!(pipeline.commands, [["load", "4", "2"]]);
    assert!(parse("load&", 0).unwrap().unwrap().background);
    assert!(!parse("load '&'", 0).unwrap().unwrap().background);
}

#[test]
fn misplaced_ampersands_are_errors() {
    assert_eq!(parse("a & b", 0), Err(ParseError::MisplacedAmpersand { position: 2 }));
    assert_eq!(parse("&", 0), Err(ParseError::MisplacedAmpersand { position: 0 }));
    assert_eq!(parse("a && ", 0), Err(ParseError::MisplacedAmpersand { position: 2 }));
}

#[test]
fn overlong_lines_are_refused() {
    let line = "a".repeat(MAX_LINE_BYTES + 1);
    assert_eq!(parse(&line, 0), Err(ParseError::TooLong { length: MAX_LINE_BYTES + 1 }));
    assert!(parse(&"a".repeat(MAX_LINE_BYTES), 0).is_ok());
}

#[test]
fn non_ascii_text_is_kept() {
    assert_eq!(one("echo 'é ü' ß"), ["echo", "é ü", "ß"]);
}

/// A small xorshift generator, so the fuzz run is reproducible without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_lines_never_panic_and_results_are_well_formed() {
    const ALPHABET: &[char] =
        &['a', 'b', ' ', '\t', '\'', '"', '\\', '$', '?', '|', '&', 'é', '\u{7f}', '\u{1b}', '{', '}', '_', '1'];
    let mut state = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200_000 {
        let length = (next(&mut state) % 24) as usize;
        let line: String = (0..length).map(|_| ALPHABET[(next(&mut state) % ALPHABET.len() as u64) as usize]).collect();
        let lookup = |name: &str| (name.len() % 2 == 1).then(|| String::from("v a"));
        if let Ok(Some(pipeline)) = parse_with(&line, 1, &lookup) {
            assert!(!pipeline.commands.is_empty(), "{line:?}");
            assert!(pipeline.commands.iter().all(|command| !command.is_empty()), "{line:?}");
        }
    }
}
