//! Drives a fake guest (a POSIX shell script speaking like the kernel's serial shell) through a real
//! [`Session`]: escapes, partial-line prompts, command output, timeouts and exit statuses.

use qemu_harness::expected as e;
use qemu_harness::scenarios::check_output;
use qemu_harness::session::{Session, Typing};
use regex::Regex;
use std::process::Command;
use std::time::Duration;

const FAKE_SHELL: &str = r#"
printf '\033[H\033[J\033[1;1H  Booting `Theseus'"'"'\r\n\r\nnano_core: up\r\n> '
while read -r line; do
  printf '%s\r\n' "$line"
  case "$line" in
    hello) printf 'Hello from greeting v1\r\n' ;;
    ns) printf 'captain\r\ngreeting_v1\r\n' ;;
    exit) exit 33 ;;
    hang) sleep 30 ;;
    *) printf 'unknown command: %s\r\n' "$line" ;;
  esac
  printf '> '
done
"#;

fn spawn(hard_timeout: Duration) -> Session {
    let typing = Typing { line_ending: "\n".into(), char_delay: Duration::ZERO };
    Session::spawn(Command::new("sh").arg("-c").arg(FAKE_SHELL), hard_timeout, typing, None).unwrap()
}

#[test]
fn drives_a_fake_shell_to_a_clean_exit() {
    let prompt = Regex::new(e::PROMPT).unwrap();
    let mut session = spawn(Duration::from_secs(20));
    session.expect(&Regex::new("Booting").unwrap(), Duration::from_secs(5)).unwrap();
    session.expect(&prompt, Duration::from_secs(5)).unwrap();
    let output = session.command("hello", &prompt, Duration::from_secs(5)).unwrap();
    assert_eq!(output, "Hello from greeting v1");
    let before = session.command("ns", &prompt, Duration::from_secs(5)).unwrap();
    check_output("ns", &before, &[e::NS_LISTS_CAPTAIN, e::NS_LISTS_GREETING_V1], &[]).unwrap();
    let unknown = session.command(e::UNKNOWN_COMMAND, &prompt, Duration::from_secs(5)).unwrap();
    check_output("x", &unknown, &[e::UNKNOWN_COMMAND_REPLY], &[]).unwrap();
    assert_eq!(session.command("ns", &prompt, Duration::from_secs(5)).unwrap(), before);
    session.send_line("exit").unwrap();
    let status = session.wait_for_exit(Duration::from_secs(5)).unwrap();
    assert_eq!(status.code(), Some(e::EXIT_STATUS_SUCCESS));
}

#[test]
fn times_out_and_reports_last_output() {
    let prompt = Regex::new(e::PROMPT).unwrap();
    let mut session = spawn(Duration::from_secs(20));
    session.expect(&prompt, Duration::from_secs(5)).unwrap();
    let failure = session.command("hang", &prompt, Duration::from_millis(300)).unwrap_err();
    assert!(failure.0.contains("timed out") && failure.0.contains("hang"), "{failure}");
    session.kill();
}

#[test]
fn reports_early_exit() {
    let mut session = spawn(Duration::from_secs(20));
    session.expect(&Regex::new(e::PROMPT).unwrap(), Duration::from_secs(5)).unwrap();
    session.send_line("exit").unwrap();
    let failure = session.expect(&Regex::new("never printed").unwrap(), Duration::from_secs(5)).unwrap_err();
    assert!(failure.0.contains("exited (exit status 33)"), "{failure}");
}
