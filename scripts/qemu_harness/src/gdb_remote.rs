//! A small client of the GDB remote serial protocol, enough to inject faults through QEMU's gdb stub
//! (`-gdb tcp:127.0.0.1:PORT`): stop and continue the guest, read and write registers and memory, and set
//! breakpoints. Protocol: GDB manual, appendix E "GDB Remote Serial Protocol".
//!
//! Packets are `$payload#checksum` (checksum: the payload bytes' sum modulo 256, two hex digits). The client asks
//! for no-ack mode (`QStartNoAckMode`) right after connecting, so later packets are not acknowledged with `+`.
//! An interrupt is the single byte 0x03; the stub answers with a stop reply (`S..` or `T..`). Register numbers
//! are those of gdb's `i386:x86-64` description: 0-15 rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15; 16 rip;
//! 17 eflags (4 bytes); values travel as little-endian hex bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Register numbers of gdb's x86-64 description, by name (index = number).
pub const REGISTER_NAMES: [&str; 18] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rip", "rflags",
];
/// The number of `rsp`.
pub const RSP: usize = 7;
/// The number of `rip`.
pub const RIP: usize = 16;
/// The number of `rflags`.
pub const RFLAGS: usize = 17;

/// A protocol or connection error, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbError(pub String);

impl std::fmt::Display for GdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gdb stub: {}", self.0)
    }
}

/// Result alias.
pub type GdbResult<T> = Result<T, GdbError>;

/// The frame of `payload`: `$payload#xx` (payload bytes `$`, `#`, `}` and `*` escaped as `}` + byte ^ 0x20).
pub fn frame(payload: &str) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(payload.len());
    for &byte in payload.as_bytes() {
        if matches!(byte, b'$' | b'#' | b'}' | b'*') {
            escaped.extend([b'}', byte ^ 0x20]);
        } else {
            escaped.push(byte);
        }
    }
    let sum = escaped.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
    let mut framed = Vec::with_capacity(escaped.len() + 4);
    framed.push(b'$');
    framed.extend(escaped);
    framed.extend(format!("#{sum:02x}").bytes());
    framed
}

/// Decodes a received payload (between `$` and `#`): undoes `}` escapes and `*` run-length encoding.
pub fn decode_payload(raw: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(byte) = bytes.next() {
        match byte {
            b'}' => out.extend(bytes.next().map(|next| next ^ 0x20)),
            b'*' => {
                let count = bytes.next().map_or(0, |n| n.saturating_sub(29));
                if let Some(&last) = out.last() {
                    out.extend(std::iter::repeat_n(last, usize::from(count)));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Hex text as bytes.
///
/// # Errors
/// Odd length or a non-hex digit.
pub fn from_hex(text: &str) -> GdbResult<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return Err(GdbError(format!("odd-length hex {text:?}")));
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).map_err(|_| GdbError(format!("bad hex {text:?}"))))
        .collect()
}

/// A connection to a gdb stub.
pub struct GdbRemote {
    stream: TcpStream,
    /// Bytes received and not yet consumed.
    pending: Vec<u8>,
    acks: bool,
}

impl GdbRemote {
    /// Connects to `127.0.0.1:port`, retrying until `timeout` (QEMU opens the port shortly after it starts),
    /// and switches to no-ack mode. QEMU stops the guest when a debugger connects; call
    /// [`GdbRemote::resume`] to let it run.
    ///
    /// # Errors
    /// No connection within `timeout`, or the stub refuses the handshake.
    pub fn connect(port: u16, timeout: Duration) -> GdbResult<GdbRemote> {
        let until = Instant::now() + timeout;
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(error) if Instant::now() >= until => {
                    return Err(GdbError(format!("cannot connect to port {port}: {error}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream.set_nodelay(true).map_err(|e| GdbError(format!("set_nodelay: {e}")))?;
        let mut remote = GdbRemote { stream, pending: Vec::new(), acks: true };
        // QEMU stops the guest on connection and may announce it with a stop reply first; `request` skips that.
        // Features first (QEMU answers later requests, `p`/`P` among them, only after this negotiation).
        remote.request("qSupported:swbreak+;hwbreak+;vContSupported+;xmlRegisters=i386")?;
        // QEMU answers `p`/`P` only once the debugger has read the target description.
        let mut offset = 0usize;
        loop {
            let chunk = remote.request(&format!("qXfer:features:read:target.xml:{offset:x},800"))?;
            match chunk.split_at_checked(1) {
                Some(("m", data)) => offset += data.len(),
                _ => break,
            }
        }
        let reply = remote.request("QStartNoAckMode")?;
        if reply == "OK" {
            remote.acks = false;
        }
        Ok(remote)
    }

    fn write_all(&mut self, bytes: &[u8]) -> GdbResult<()> {
        if std::env::var_os("GDB_TRACE").is_some() {
            eprintln!("gdb -> {}", String::from_utf8_lossy(bytes));
        }
        self.stream.write_all(bytes).map_err(|e| GdbError(format!("write: {e}")))
    }

    /// Reads one packet's payload, waiting at most `timeout`; `Ok(None)` on timeout.
    fn read_packet(&mut self, timeout: Duration) -> GdbResult<Option<String>> {
        let until = Instant::now() + timeout;
        loop {
            // Skip acks and noise before the `$`.
            if let Some(start) = self.pending.iter().position(|&byte| byte == b'$') {
                self.pending.drain(..start);
                if let Some(hash) = self.pending.iter().position(|&byte| byte == b'#')
                    && self.pending.len() >= hash + 3
                {
                    let payload = decode_payload(&self.pending[1..hash]);
                    self.pending.drain(..hash + 3);
                    if std::env::var_os("GDB_TRACE").is_some() {
                        eprintln!("gdb <- {}", String::from_utf8_lossy(&payload));
                    }
                    if self.acks {
                        self.write_all(b"+")?;
                    }
                    return Ok(Some(String::from_utf8_lossy(&payload).into_owned()));
                }
            } else {
                self.pending.clear();
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let wait = (until - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait)).map_err(|e| GdbError(format!("set_read_timeout: {e}")))?;
            let mut buffer = [0u8; 4096];
            match self.stream.read(&mut buffer) {
                Ok(0) => return Err(GdbError("the connection closed (QEMU exited?)".into())),
                Ok(count) => self.pending.extend_from_slice(&buffer[..count]),
                Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) => return Err(GdbError(format!("read: {error}"))),
            }
        }
    }

    /// Discards packets that arrived unasked (a stop reply announced on connection, a late one).
    fn drain(&mut self) -> GdbResult<()> {
        while self.read_packet(Duration::from_millis(1))?.is_some() {}
        Ok(())
    }

    /// Sends `payload` and returns the reply's payload (10 s at most). Stop replies (`T..`, `S..`) that arrive
    /// meanwhile are skipped: no request of this client has one as its answer.
    ///
    /// # Errors
    /// Connection errors, no reply, or an `Exx` error reply.
    pub fn request(&mut self, payload: &str) -> GdbResult<String> {
        self.drain()?;
        let framed = frame(payload);
        self.write_all(&framed)?;
        let until = Instant::now() + Duration::from_secs(10);
        let reply = loop {
            let reply = self
                .read_packet(until.saturating_duration_since(Instant::now()))?
                .ok_or_else(|| GdbError(format!("no reply to `{payload}` within 10 s")))?;
            if !reply.starts_with(['T', 'S']) {
                break reply;
            }
        };
        if reply.len() == 3 && reply.starts_with('E') {
            return Err(GdbError(format!("`{payload}` failed: {reply}")));
        }
        Ok(reply)
    }

    /// Stops the running guest (0x03) and returns the stop reply.
    ///
    /// # Errors
    /// No stop reply within 10 s.
    pub fn interrupt(&mut self) -> GdbResult<String> {
        self.drain()?;
        self.write_all(&[0x03])?;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = self
                .read_packet(until.saturating_duration_since(Instant::now()))?
                .ok_or_else(|| GdbError("no stop reply to an interrupt".into()))?;
            if reply.starts_with(['T', 'S']) {
                return Ok(reply);
            }
        }
    }

    /// Lets the stopped guest run (`c`); the stop reply comes later (see [`GdbRemote::poll_stop`]).
    ///
    /// # Errors
    /// Connection errors.
    pub fn resume(&mut self) -> GdbResult<()> {
        let framed = frame("c");
        self.write_all(&framed)
    }

    /// A stop reply (e.g. a breakpoint hit) if one arrives within `timeout`.
    ///
    /// # Errors
    /// Connection errors.
    pub fn poll_stop(&mut self, timeout: Duration) -> GdbResult<Option<String>> {
        self.read_packet(timeout)
    }

    /// The gdb thread ids (one per CPU under QEMU).
    ///
    /// # Errors
    /// As for [`GdbRemote::request`].
    pub fn threads(&mut self) -> GdbResult<Vec<String>> {
        let mut threads = Vec::new();
        let mut reply = self.request("qfThreadInfo")?;
        while let Some(list) = reply.strip_prefix('m') {
            threads.extend(list.split(',').filter(|id| !id.is_empty()).map(String::from));
            reply = self.request("qsThreadInfo")?;
        }
        Ok(threads)
    }

    /// Makes register and memory requests act on thread (CPU) `id`.
    ///
    /// # Errors
    /// As for [`GdbRemote::request`].
    pub fn select_thread(&mut self, id: &str) -> GdbResult<()> {
        self.request(&format!("Hg{id}")).map(drop)
    }

    /// Register `number` and its width in bytes.
    ///
    /// # Errors
    /// As for [`GdbRemote::request`], or a malformed value.
    pub fn read_register(&mut self, number: usize) -> GdbResult<(u64, usize)> {
        let bytes = from_hex(&self.request(&format!("p{number:x}"))?)?;
        if bytes.is_empty() || bytes.len() > 8 {
            return Err(GdbError(format!("register {number} has {} bytes", bytes.len())));
        }
        let value = bytes.iter().rev().fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
        Ok((value, bytes.len()))
    }

    /// Writes register `number` (`width` bytes, as read).
    ///
    /// # Errors
    /// As for [`GdbRemote::request`].
    pub fn write_register(&mut self, number: usize, value: u64, width: usize) -> GdbResult<()> {
        let bytes = &value.to_le_bytes()[..width.min(8)];
        self.request(&format!("P{number:x}={}", to_hex(bytes))).map(drop)
    }

    /// `length` bytes at guest virtual address `address` (through the selected CPU's page tables).
    ///
    /// # Errors
    /// As for [`GdbRemote::request`] (an unmapped address gives an error reply).
    pub fn read_memory(&mut self, address: u64, length: usize) -> GdbResult<Vec<u8>> {
        let bytes = from_hex(&self.request(&format!("m{address:x},{length:x}"))?)?;
        if bytes.len() != length {
            return Err(GdbError(format!("read {} of {length} bytes at {address:#x}", bytes.len())));
        }
        Ok(bytes)
    }

    /// Writes `bytes` at guest virtual address `address` (QEMU writes read-only pages too).
    ///
    /// # Errors
    /// As for [`GdbRemote::request`].
    pub fn write_memory(&mut self, address: u64, bytes: &[u8]) -> GdbResult<()> {
        self.request(&format!("M{address:x},{:x}:{}", bytes.len(), to_hex(bytes))).map(drop)
    }

    /// Sets (`true`) or removes a breakpoint at `address` (`Z0`/`z0`; QEMU keeps it outside guest memory).
    ///
    /// # Errors
    /// As for [`GdbRemote::request`].
    pub fn breakpoint(&mut self, address: u64, set: bool) -> GdbResult<()> {
        let kind = if set { 'Z' } else { 'z' };
        self.request(&format!("{kind}0,{address:x},1")).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_checksum() {
        // `$g#67` is the manual's example: 'g' is 0x67.
        assert_eq!(frame("g"), b"$g#67".to_vec());
        // 0x61 + 0x7d + 0x03 = 0xe1.
        assert_eq!(frame("a#"), b"$a}\x03#e1".to_vec());
    }

    #[test]
    fn decoding_escapes_and_runs() {
        assert_eq!(decode_payload(b"a}\x03b"), b"a#b".to_vec());
        // "0* " is '0' repeated 1 + (' ' - 29) = 4 times.
        assert_eq!(decode_payload(b"0* "), b"0000".to_vec());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(from_hex(&to_hex(&[0, 0xab, 0x7f])).unwrap(), vec![0, 0xab, 0x7f]);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}
