//! [`Envelope`]: an encoded payload (method arguments, results, alarm data, actor errors).
//!
//! Typed calls encode with MessagePack (named fields, compact and schema-tolerant); bridges such
//! as HTTP control servers hand in JSON. An envelope remembers its format and decodes either.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How an [`Envelope`]'s bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MessagePack with named struct fields (what typed calls use).
    MsgPack,
    /// JSON (what untyped bridges usually hand in).
    Json,
}

/// An encoded payload. An empty envelope decodes as `()` / `None` / unit structs.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    format: Format,
    bytes: Vec<u8>,
}

/// A payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

const MSGPACK_NIL: &[u8] = &[0xc0];

/// How deeply a payload's values may nest (arrays and maps), in either format: what
/// `serde_json` allows, and what MessagePack decoding is held to as well, so a hostile payload
/// cannot recurse the decoder into the stack's end.
pub const MAX_PAYLOAD_DEPTH: usize = 128;

/// Decode MessagePack `bytes` as `T`, allowing values to nest at most `max_depth` deep.
pub fn decode_msgpack<T: DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, rmp_serde::decode::Error> {
    let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
    decoder.set_max_depth(max_depth);
    T::deserialize(&mut decoder)
}

impl Envelope {
    /// An envelope with no payload.
    pub fn empty() -> Self {
        Envelope {
            format: Format::MsgPack,
            bytes: Vec::new(),
        }
    }

    /// Encode a value with MessagePack (named fields).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        rmp_serde::to_vec_named(value)
            .map(|bytes| Envelope {
                format: Format::MsgPack,
                bytes,
            })
            .map_err(|e| CodecError(format!("cannot encode payload as MessagePack: {e}")))
    }

    /// Encode a value as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        serde_json::to_vec(value)
            .map(|bytes| Envelope {
                format: Format::Json,
                bytes,
            })
            .map_err(|e| CodecError(format!("cannot encode payload as JSON: {e}")))
    }

    /// Wrap bytes that already hold JSON (e.g. an HTTP request body). Empty bytes mean no payload.
    pub fn from_json_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Envelope {
            format: Format::Json,
            bytes: bytes.into(),
        }
    }

    /// Wrap bytes that already hold MessagePack. Empty bytes mean no payload.
    pub fn from_msgpack_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Envelope {
            format: Format::MsgPack,
            bytes: bytes.into(),
        }
    }

    /// The encoding of the bytes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether there is no payload at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Take the raw bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Decode into `T`, whichever format the envelope holds.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        match self.format {
            Format::MsgPack => {
                let bytes = if self.bytes.is_empty() {
                    MSGPACK_NIL
                } else {
                    &self.bytes
                };
                decode_msgpack(bytes, MAX_PAYLOAD_DEPTH).map_err(|e| CodecError(e.to_string()))
            }
            Format::Json => {
                let bytes: &[u8] = if self.bytes.iter().all(u8::is_ascii_whitespace) {
                    b"null"
                } else {
                    &self.bytes
                };
                serde_json::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
            }
        }
    }

    /// Decode into a JSON value (what bridges send back to their clients).
    pub fn to_json(&self) -> Result<serde_json::Value, CodecError> {
        self.decode()
    }

    /// This payload as MessagePack bytes, converting from JSON if needed.
    pub fn into_msgpack(self) -> Result<Vec<u8>, CodecError> {
        match self.format {
            Format::MsgPack => Ok(self.bytes),
            Format::Json => {
                let value: serde_json::Value = self.decode()?;
                Ok(Envelope::encode(&value)?.bytes)
            }
        }
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_json() {
            Ok(v) => write!(f, "Envelope({:?}, {v})", self.format),
            Err(_) => write!(f, "Envelope({:?}, {} bytes)", self.format, self.bytes.len()),
        }
    }
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_nested_deeper_than_the_limit_is_refused() {
        let nested = |depth: usize| {
            let mut bytes = vec![0x91u8; depth];
            bytes.push(0xc0);
            Envelope::from_msgpack_bytes(bytes)
        };
        let within: serde_json::Value = nested(MAX_PAYLOAD_DEPTH - 1).decode().unwrap();
        assert!(within.is_array());
        let err = nested(MAX_PAYLOAD_DEPTH + 1)
            .decode::<serde_json::Value>()
            .unwrap_err();
        assert!(err.0.contains("depth"), "{err}");
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct In {
        #[serde(rename = "In")]
        value: i64,
    }

    #[test]
    fn json_and_msgpack_decode_to_the_same_value() {
        let a = Envelope::from_json_bytes(br#"{"In": 42}"#.to_vec());
        let b = Envelope::encode(&In { value: 42 }).unwrap();
        assert_eq!(a.decode::<In>().unwrap(), In { value: 42 });
        assert_eq!(b.decode::<In>().unwrap(), In { value: 42 });
        assert_eq!(b.to_json().unwrap(), serde_json::json!({"In": 42}));
        assert_eq!(a.into_msgpack().unwrap(), b.into_bytes());
    }

    #[test]
    fn empty_payload_decodes_as_unit_and_none() {
        Envelope::empty().decode::<()>().unwrap();
        assert_eq!(
            Envelope::from_json_bytes(Vec::new())
                .decode::<Option<i64>>()
                .unwrap(),
            None
        );
    }

    #[test]
    fn wrong_shape_is_a_clear_error() {
        let err = Envelope::from_json_bytes(b"\"x\"".to_vec())
            .decode::<i64>()
            .unwrap_err();
        assert!(err.0.contains("invalid type"), "{err}");
    }
}
