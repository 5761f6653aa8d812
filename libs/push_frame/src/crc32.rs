//! CRC-32 as used by zlib, PNG and Ethernet (ISO-HDLC): reflected polynomial 0xEDB88320, initial value and final
//! XOR 0xFFFFFFFF. Catalogue check value: `crc32(b"123456789") == 0xCBF43926` (Greg Cook's CRC catalogue,
//! "CRC-32/ISO-HDLC").

/// The reflected generator polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// One table entry per byte value: the CRC register after shifting that byte through eight steps.
const TABLE: [u32; 256] = {
    let mut table = [0_u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut value = index as u32;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 != 0 { (value >> 1) ^ POLYNOMIAL } else { value >> 1 };
            bit += 1;
        }
        table[index] = value;
        index += 1;
    }
    table
};

/// An incremental CRC-32 computation.
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    register: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A computation over no bytes yet.
    pub const fn new() -> Self {
        Self { register: 0xFFFF_FFFF }
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.register = TABLE[((self.register ^ u32::from(byte)) & 0xFF) as usize] ^ (self.register >> 8);
        }
    }

    /// The CRC-32 of every byte fed so far.
    pub fn finish(&self) -> u32 {
        !self.register
    }
}

/// The CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(bytes);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..1000_u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut crc = Crc32::new();
        for chunk in data.chunks(37) {
            crc.update(chunk);
        }
        assert_eq!(crc.finish(), crc32(&data));
    }
}
