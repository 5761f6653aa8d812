//! `cellbuild`: command-line front of the build pipeline (see the library docs).

use cellbuild::corrupt::CorruptionMode;
use cellbuild::pipeline::{self, Options};
use cellbuild::push::{self, PushOptions};
use cellbuild::workspace::Workspace;
use cellbuild::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cellbuild <command> [options]

commands:
  build          build the kernel workspace, link nano_core, make cell objects, cells.manifest,
                 nano_core.syms and build/theseus.iso
  push           rebuild one cell (the same workspace build) and send its object into a running guest
                 over its second serial port; the guest stores it as <cell>@<n> for `swap`
  host-crates    print the workspace packages whose unit tests run on the host
                 (library root has #![cfg_attr(not(test), no_std)])

build options:
  --root DIR            kernel workspace root (default: .)
  --target-spec FILE    target JSON, relative to the root (default: cfg/x86_64-theseus.json)
  --linker-script FILE  linker script, relative to the root (default: cfg/linker.ld)
  --out DIR             output directory, relative to the root (default: build)
  --cmdline TEXT        kernel command line in grub.cfg (default: empty)
  --corrupt CELL        also build build/theseus-corrupt.iso with CELL's object damaged
  --corrupt-mode MODE   shdr (section header table offset past the end; default) or
                        reloc (every relocation type set to 0xEE)
  --no-iso              stop after cells.manifest
  --allow-unresolved    undefined symbols defined nowhere are warnings, not errors (work in progress)
  --cargo-arg ARG       extra argument for cargo build (repeatable), e.g. --offline
  --ld-arg ARG          extra argument for the nano_core link (repeatable), e.g. --emit-relocs

push options (and --root, --target-spec, --out, --cargo-arg):
  --cell NAME           the cell (package) to push, e.g. greeting_v2 (required)
  --socket PATH         the Unix socket of the guest's COM2 (default: <out>/push.sock, as `make run` sets up)
  --image DIR           where the running image's nano_core.syms and cells.manifest are (default: <out>)
  --timeout SECONDS     how long to wait for the guest's reply (default: 30)
";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match run(&arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cellbuild: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(arguments: &[String]) -> Result<()> {
    let Some((command, rest)) = arguments.split_first() else {
        print!("{USAGE}");
        return Err(Error::new("no command given"));
    };
    let mut options = Options {
        root: PathBuf::from("."),
        target_spec: PathBuf::from("cfg/x86_64-theseus.json"),
        linker_script: PathBuf::from("cfg/linker.ld"),
        out_dir: PathBuf::from("build"),
        cmdline: String::new(),
        corrupt: None,
        cargo_args: Vec::new(),
        ld_args: Vec::new(),
        make_iso: true,
        allow_unresolved: false,
    };
    let mut corrupt_mode = CorruptionMode::SectionHeaders;
    let (mut push_cell, mut socket, mut image_dir, mut timeout_seconds) = (None, None, None, 30_u64);
    let mut corrupt_cell = None;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().cloned().ok_or_else(|| Error(format!("{flag} needs a value")));
        match flag.as_str() {
            "--root" => options.root = PathBuf::from(value()?),
            "--target-spec" => options.target_spec = PathBuf::from(value()?),
            "--linker-script" => options.linker_script = PathBuf::from(value()?),
            "--out" => options.out_dir = PathBuf::from(value()?),
            "--cmdline" => options.cmdline = value()?,
            "--corrupt" => corrupt_cell = Some(value()?).filter(|v| !v.is_empty()),
            "--corrupt-mode" => {
                let name = value()?;
                corrupt_mode = CorruptionMode::from_name(&name)
                    .ok_or_else(|| Error(format!("--corrupt-mode: unknown mode `{name}` (shdr or reloc)")))?;
            }
            "--no-iso" => options.make_iso = false,
            "--allow-unresolved" => options.allow_unresolved = true,
            "--cargo-arg" => options.cargo_args.push(value()?),
            "--ld-arg" => options.ld_args.push(value()?),
            "--cell" => push_cell = Some(value()?),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--image" => image_dir = Some(PathBuf::from(value()?)),
            "--timeout" => {
                let text = value()?;
                timeout_seconds = text.parse().map_err(|_| Error(format!("--timeout: `{text}` is not a number")))?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(Error(format!("unknown option `{other}`\n{USAGE}"))),
        }
    }
    options.corrupt = corrupt_cell.map(|cell| (cell, corrupt_mode));
    options.root =
        std::fs::canonicalize(&options.root).map_err(|e| Error(format!("--root {}: {e}", options.root.display())))?;
    match command.as_str() {
        "build" => {
            let summary = pipeline::build(&options)?;
            println!("{summary}");
            Ok(())
        }
        "push" => {
            let cell = push_cell.ok_or_else(|| Error::new("push needs --cell NAME"))?;
            let out = options.root.join(&options.out_dir);
            let summary = push::push(&PushOptions {
                socket: socket.unwrap_or_else(|| out.join("push.sock")),
                image_dir,
                cell,
                root: options.root.clone(),
                target_spec: options.target_spec.clone(),
                out_dir: options.out_dir.clone(),
                reply_timeout: std::time::Duration::from_secs(timeout_seconds),
                cargo_args: options.cargo_args.clone(),
            })?;
            println!("{summary}");
            Ok(())
        }
        "host-crates" => {
            println!("{}", Workspace::load(&options.root)?.host_testable().join(" "));
            Ok(())
        }
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Error(format!("unknown command `{other}`\n{USAGE}"))),
    }
}
