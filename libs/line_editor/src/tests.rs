use super::*;

fn no_completion(_: &str, _: &str) -> Vec<String> {
    Vec::new()
}

/// Feeds `input`, returning the last event and all output.
fn type_bytes(editor: &mut LineEditor, input: &[u8]) -> (Event, Vec<u8>) {
    let mut output = Vec::new();
    let mut event = Event::Pending;
    for &byte in input {
        event = editor.feed(byte, &mut output, &no_completion);
    }
    (event, output)
}

#[test]
fn plain_typing_echoes_and_ends_with_enter() {
    let mut editor = LineEditor::new("> ");
    let (event, output) = type_bytes(&mut editor, b"ns\r");
    assert_eq!(event, Event::Line(String::from("ns")));
    assert_eq!(output, b"ns\n");
}

#[test]
fn carriage_return_line_feed_ends_one_line_only() {
    let mut editor = LineEditor::new("> ");
    let (event, _) = type_bytes(&mut editor, b"ls\r\n");
    assert_eq!(event, Event::Pending);
    assert_eq!(editor.history(), &[String::from("ls")]);
    let (event, _) = type_bytes(&mut editor, b"\n");
    assert_eq!(event, Event::Line(String::new()));
}

#[test]
fn backspace_at_end_erases_visibly() {
    let mut editor = LineEditor::new("> ");
    let (event, output) = type_bytes(&mut editor, b"helo\x7f\x7fllo\r");
    assert_eq!(event, Event::Line(String::from("hello")));
    assert_eq!(output, b"helo\x08 \x08\x08 \x08llo\n");
    let (event, _) = type_bytes(&mut editor, b"\x08\x08x\r");
    assert_eq!(event, Event::Line(String::from("x")));
}

#[test]
fn cursor_keys_edit_in_the_middle() {
    let mut editor = LineEditor::new("> ");
    // "hllo", Left x3, insert 'e', End, '!' -> "hello!"
    let (event, _) = type_bytes(&mut editor, b"hllo\x1b[D\x1b[D\x1b[De\x1b[F!\r");
    assert_eq!(event, Event::Line(String::from("hello!")));
    // Home, Delete -> drops the first character.
    let (event, _) = type_bytes(&mut editor, b"xabc\x1b[H\x1b[3~\r");
    assert_eq!(event, Event::Line(String::from("abc")));
}

#[test]
fn history_walks_back_and_restores_the_draft() {
    let mut editor = LineEditor::new("> ");
    type_bytes(&mut editor, b"first\rsecond\r");
    let (_, output) = type_bytes(&mut editor, b"dr\x1b[A");
    assert!(output.ends_with(b"\r> second\x1b[K"));
    let (event, _) = type_bytes(&mut editor, b"\x1b[A\x1b[A\r");
    assert_eq!(event, Event::Line(String::from("first")));
    let (event, _) = type_bytes(&mut editor, b"dr\x1b[A\x1b[B\x1b[Baft\r");
    assert_eq!(event, Event::Line(String::from("draft")));
    assert_eq!(editor.history(), &["first", "second", "first", "draft"].map(String::from));
}

#[test]
fn ctrl_c_abandons_and_ctrl_u_clears() {
    let mut editor = LineEditor::new("> ");
    let (event, output) = type_bytes(&mut editor, b"abc\x03");
    assert_eq!(event, Event::Interrupted);
    assert!(output.ends_with(b"^C\n"));
    let (event, _) = type_bytes(&mut editor, b"abc\x15xyz\r");
    assert_eq!(event, Event::Line(String::from("xyz")));
    assert!(editor.history().iter().all(|line| line != "abc"));
}

#[test]
fn tab_completes_unique_extends_common_and_lists_many() {
    let candidates = |_: &str, _: &str| vec![String::from("swap"), String::from("shell"), String::from("show")];
    let mut editor = LineEditor::new("> ");
    let mut output = Vec::new();
    for &byte in b"sw\t" {
        editor.feed(byte, &mut output, &candidates);
    }
    assert_eq!(editor.current_line(), "swap ");
    let mut editor = LineEditor::new("> ");
    let mut output = Vec::new();
    for &byte in b"sh\t" {
        editor.feed(byte, &mut output, &candidates);
    }
    assert_eq!(editor.current_line(), "sh");
    assert!(String::from_utf8_lossy(&output).contains("shell  show"));
    let mut output = Vec::new();
    editor.feed(b'e', &mut output, &candidates);
    editor.feed(b'\t', &mut output, &candidates);
    assert_eq!(editor.current_line(), "shell ");
}

#[test]
fn overlong_lines_ring_the_bell_once_and_history_is_bounded() {
    let mut editor = LineEditor::new("> ");
    let long = vec![b'a'; MAX_LINE_LENGTH + 3];
    let (_, output) = type_bytes(&mut editor, &long);
    assert_eq!(editor.current_line().len(), MAX_LINE_LENGTH);
    assert_eq!(output.iter().filter(|&&byte| byte == 0x07).count(), 1, "one bell per overflowing line");
    type_bytes(&mut editor, b"\r");
    for index in 0..HISTORY_CAPACITY + 5 {
        type_bytes(&mut editor, format!("command {index}\r").as_bytes());
    }
    assert_eq!(editor.history().len(), HISTORY_CAPACITY);
    assert_eq!(editor.history().last().unwrap(), &format!("command {}", HISTORY_CAPACITY + 4));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut editor = LineEditor::new("> ");
    let mut state: u64 = 0x1234_5678_9abc_def0;
    let mut output = Vec::new();
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        editor.feed((state >> 24) as u8, &mut output, &|_, _| vec![String::from("alpha"), String::from("alps")]);
        output.clear();
    }
}

#[test]
fn control_k_erases_to_the_end() {
    let mut editor = LineEditor::new("> ");
    let (event, _) = type_bytes(&mut editor, b"ns -a\x1b[D\x1b[D\x0b\r");
    assert_eq!(event, Event::Line(String::from("ns ")));
}

#[test]
fn control_w_erases_the_word_before_the_cursor() {
    let mut editor = LineEditor::new("> ");
    let (event, _) = type_bytes(&mut editor, b"swap abc def  \x17x\r");
    assert_eq!(event, Event::Line(String::from("swap abc x")));
    let (event, _) = type_bytes(&mut editor, b"one\x17\x17two\x01\x17\r");
    assert_eq!(event, Event::Line(String::from("two")));
}

#[test]
fn an_overlong_line_is_refused_whole() {
    let mut editor = LineEditor::new("> ");
    let mut input = vec![b'a'; MAX_LINE_LENGTH + 10];
    input.push(b'\r');
    let (event, output) = type_bytes(&mut editor, &input);
    assert_eq!(event, Event::TooLong { dropped: 10 });
    assert_eq!(output.iter().filter(|&&byte| byte == 0x07).count(), 1);
    assert!(editor.history().is_empty());
    let (event, _) = type_bytes(&mut editor, b"ok\r");
    assert_eq!(event, Event::Line(String::from("ok")));
}

/// A small xorshift generator, so the fuzz run is reproducible without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_bytes_never_panic_and_keep_the_line_in_bounds() {
    let mut editor = LineEditor::new("> ");
    let complete = |_: &str, word: &str| vec![format!("{word}x"), format!("{word}xy"), String::from("zz")];
    let mut state = 0x2545_F491_4F6C_DD1D;
    let mut output = Vec::new();
    for _ in 0..300_000 {
        let random = next(&mut state);
        // Bias towards the bytes that matter: escapes, digits, CSI finals, controls, Enter and printable text.
        let byte = match random % 8 {
            0 => 0x1b,
            1 => b"[O~0123456789ABCDFH"[(random >> 8) as usize % 19],
            2 => (random >> 8) as u8 & 0x1f,
            3 if random % 64 == 3 => b'\r',
            _ => (random >> 8) as u8,
        };
        output.clear();
        let event = editor.feed(byte, &mut output, &complete);
        assert!(editor.current_line().len() <= MAX_LINE_LENGTH);
        assert!(editor.cursor <= editor.line.len());
        if let Event::Line(line) = event {
            assert!(line.bytes().all(|byte| (0x20..=0x7e).contains(&byte)), "{line:?}");
        }
    }
}
