//! Serialization of keys and values to and from the bytes that travel on topics and live in
//! state stores.
//!
//! Every place where typed data meets bytes (a source topic, a sink topic, a repartition
//! topic, a state store, a changelog) goes through a [`Serde`]. [`Serdes`] is the factory
//! users call for the built-in ones; [`DefaultSerde`] lets the DSL pick a serde from the type
//! alone, so `builder.stream::<String, i64>("topic")` needs no serde arguments.
//!
//! A `None` byte slice is Kafka's `null`: a record without key, or a tombstone value. Only
//! serdes of `Option<T>` (see [`Serdes::optional`]) and of `()` accept it; the others answer
//! [`SerdeError::UnexpectedNull`]. Bad bytes are an error value, never a panic.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value could not be serialized or deserialized.
///
/// ```
/// use kstreams::serde::{Serde, SerdeError, Serdes};
/// let err = Serdes::i64().deserialize(Some(b"abc")).unwrap_err();
/// assert_eq!(err, SerdeError::WrongLength { expected: 8, actual: 3 });
/// assert_eq!(err.to_string(), "expected 8 bytes, got 3");
/// assert_eq!(Serdes::string().deserialize(None), Err(SerdeError::UnexpectedNull));
/// let bad_utf8 = Serdes::string().deserialize(Some(&[0xff]));
/// assert!(matches!(bad_utf8, Err(SerdeError::InvalidUtf8(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerdeError {
    /// The bytes were `null` but the type has no `null`.
    #[error("unexpected null: the type has no null value (use an Option serde to allow it)")]
    UnexpectedNull,
    /// A fixed-width encoding got the wrong number of bytes.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength { expected: usize, actual: usize },
    /// String bytes were not UTF-8.
    #[error("invalid UTF-8: {0}")]
    InvalidUtf8(String),
    /// JSON could not be parsed or produced.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// postcard could not decode or encode.
    #[error("invalid postcard encoding: {0}")]
    Postcard(String),
    /// Any other failure, from a user serde.
    #[error("{0}")]
    Custom(String),
}

/// Converts values of `T` to and from Kafka bytes (`None` is Kafka's `null`).
///
/// Implementations must be cheap to share between tasks and threads.
///
/// ```
/// use kstreams::serde::{Serde, Serdes};
/// let serde = Serdes::i64();
/// let bytes = serde.serialize(&42).unwrap();
/// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), 42);
/// assert!(serde.deserialize(Some(b"bad")).is_err());
/// ```
pub trait Serde<T>: Send + Sync + 'static {
    /// Encodes a value; `Ok(None)` means `null`.
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError>;
    /// Decodes bytes; `None` is `null`.
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError>;
}

/// A shared serde, as the DSL stores it.
///
/// ```
/// use std::sync::Arc;
/// use kstreams::serde::{Serde, SerdeError, SerdeRef, Serdes};
///
/// /// Booleans as one byte.
/// struct BoolSerde;
/// impl Serde<bool> for BoolSerde {
///     fn serialize(&self, value: &bool) -> Result<Option<Vec<u8>>, SerdeError> {
///         Ok(Some(vec![*value as u8]))
///     }
///     fn deserialize(&self, bytes: Option<&[u8]>) -> Result<bool, SerdeError> {
///         match bytes.ok_or(SerdeError::UnexpectedNull)? {
///             [b] => Ok(*b != 0),
///             other => Err(SerdeError::WrongLength { expected: 1, actual: other.len() }),
///         }
///     }
/// }
///
/// let serde: SerdeRef<bool> = Arc::new(BoolSerde);
/// assert_eq!(serde.serialize(&true).unwrap(), Some(vec![1]));
/// let optional = Serdes::optional(serde.clone()); // handles are cheap to share
/// assert_eq!(optional.deserialize(Some(&[0])).unwrap(), Some(false));
/// assert_eq!(optional.deserialize(None).unwrap(), None);
/// ```
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Types that have a serde the DSL uses when none is given.
///
/// Implement it for your own event types with [`json_serde!`](crate::json_serde) (JSON) or by
/// hand (returning, for example, [`Serdes::postcard`]).
///
/// ```
/// use kstreams::{config::StreamsConfig, dsl::StreamsBuilder, testing::TestDriver};
/// use kstreams::serde::{DefaultSerde, SerdeRef, Serdes};
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
/// struct Reading { sensor: String, celsius: f64 }
///
/// impl DefaultSerde for Reading {
///     fn default_serde() -> SerdeRef<Self> {
///         Serdes::postcard() // compact binary
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, Reading>("readings").filter(|_, r| r.celsius > 30.0).to("hot");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("d")).unwrap();
/// let hot = Reading { sensor: "s1".into(), celsius: 31.5 };
/// driver.create_input_topic::<String, Reading>("readings").pipe_input_at("s1".into(), hot.clone(), 0);
/// assert_eq!(driver.create_output_topic::<String, Reading>("hot").read_value(), Some(hot));
/// ```
pub trait DefaultSerde: Sized + 'static {
    /// The serde used for this type when the caller names none.
    fn default_serde() -> SerdeRef<Self>;
}

/// Implements [`DefaultSerde`] with JSON for one or more serde-compatible types.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, Clone)]
/// struct Order { id: u64 }
/// kstreams::json_serde!(Order);
/// ```
#[macro_export]
macro_rules! json_serde {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::serde::DefaultSerde for $t {
            fn default_serde() -> $crate::serde::SerdeRef<Self> {
                $crate::serde::Serdes::json::<$t>()
            }
        }
    )+};
}

/// Factory for the built-in serdes (Kafka Streams' `Serdes`).
///
/// ```
/// use kstreams::serde::{Serde, Serdes};
/// // Kafka's encodings: big-endian fixed-width numbers, UTF-8 strings.
/// assert_eq!(Serdes::i64().serialize(&1).unwrap(), Some(vec![0, 0, 0, 0, 0, 0, 0, 1]));
/// assert_eq!(Serdes::string().deserialize(Some(b"hi")).unwrap(), "hi");
/// // `null` is only a value for `Option`s.
/// assert!(Serdes::string().deserialize(None).is_err());
/// let optional = Serdes::optional(Serdes::string());
/// assert_eq!(optional.deserialize(None).unwrap(), None);
/// assert_eq!(optional.serialize(&None).unwrap(), None);
/// // JSON for events on topics.
/// let json = Serdes::json::<Vec<u32>>();
/// assert_eq!(json.serialize(&vec![1, 2]).unwrap(), Some(b"[1,2]".to_vec()));
/// ```
pub struct Serdes;

impl Serdes {
    /// UTF-8 strings.
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::string();
    /// let bytes = serde.serialize(&"héllo".to_string()).unwrap();
    /// assert_eq!(bytes.as_deref(), Some("héllo".as_bytes()));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), "héllo");
    /// assert!(serde.deserialize(Some(&[0xff, 0xfe])).is_err()); // not UTF-8
    /// ```
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    /// Raw bytes, passed through unchanged.
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::bytes();
    /// let bytes = serde.serialize(&vec![0, 255, 3]).unwrap();
    /// assert_eq!(bytes, Some(vec![0, 255, 3]));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), vec![0, 255, 3]);
    /// assert!(serde.deserialize(None).is_err()); // `null` is no byte string
    /// ```
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    /// Big-endian 4-byte integers (Kafka's `IntegerSerde`).
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::i32();
    /// let bytes = serde.serialize(&-2).unwrap();
    /// assert_eq!(bytes, Some(vec![0xff, 0xff, 0xff, 0xfe]));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), -2);
    /// assert!(serde.deserialize(Some(&[0, 0, 0, 0, 1])).is_err()); // 5 bytes
    /// ```
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(FixedSerde::<i32>(PhantomData))
    }
    /// Big-endian 8-byte integers (Kafka's `LongSerde`).
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::i64();
    /// let bytes = serde.serialize(&258).unwrap();
    /// assert_eq!(bytes, Some(vec![0, 0, 0, 0, 0, 0, 1, 2]));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), 258);
    /// let min = serde.serialize(&i64::MIN).unwrap();
    /// assert_eq!(serde.deserialize(min.as_deref()).unwrap(), i64::MIN);
    /// ```
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(FixedSerde::<i64>(PhantomData))
    }
    /// Big-endian 4-byte unsigned integers.
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::u32();
    /// let bytes = serde.serialize(&u32::MAX).unwrap();
    /// assert_eq!(bytes, Some(vec![0xff; 4]));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), u32::MAX);
    /// ```
    pub fn u32() -> SerdeRef<u32> {
        Arc::new(FixedSerde::<u32>(PhantomData))
    }
    /// Big-endian 8-byte unsigned integers (byte order equals numeric order).
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::u64();
    /// let (small, large) = (serde.serialize(&255).unwrap(), serde.serialize(&256).unwrap());
    /// assert!(small < large); // so range scans over u64 keys go in numeric order
    /// assert_eq!(serde.deserialize(large.as_deref()).unwrap(), 256);
    /// ```
    pub fn u64() -> SerdeRef<u64> {
        Arc::new(FixedSerde::<u64>(PhantomData))
    }
    /// Big-endian IEEE-754 doubles (Kafka's `DoubleSerde`).
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::f64();
    /// let bytes = serde.serialize(&2.5).unwrap();
    /// assert_eq!(bytes, Some(2.5f64.to_be_bytes().to_vec()));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), 2.5);
    /// ```
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(FixedSerde::<f64>(PhantomData))
    }
    /// The unit type: writes `null`, reads any bytes (for records whose key is ignored).
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::unit();
    /// assert_eq!(serde.serialize(&()).unwrap(), None);
    /// assert_eq!(serde.deserialize(None).unwrap(), ());
    /// assert_eq!(serde.deserialize(Some(b"whatever")).unwrap(), ());
    /// ```
    pub fn unit() -> SerdeRef<()> {
        Arc::new(UnitSerde)
    }
    /// JSON through serde_json: the format for events on topics.
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Order { id: u64, item: String }
    ///
    /// let serde = Serdes::json::<Order>();
    /// let order = Order { id: 7, item: "mouse".into() };
    /// let bytes = serde.serialize(&order).unwrap();
    /// assert_eq!(bytes.as_deref(), Some(&br#"{"id":7,"item":"mouse"}"#[..]));
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), order);
    /// assert!(serde.deserialize(Some(b"{")).is_err());
    /// ```
    pub fn json<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(JsonSerde::<T>(PhantomData))
    }
    /// postcard: a compact binary format for state and changelog values.
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Order { id: u64, item: String }
    ///
    /// let order = Order { id: 7, item: "mouse".into() };
    /// let bytes = Serdes::postcard::<Order>().serialize(&order).unwrap().unwrap();
    /// assert_eq!(Serdes::postcard::<Order>().deserialize(Some(&bytes)).unwrap(), order);
    /// let json = Serdes::json::<Order>().serialize(&order).unwrap().unwrap();
    /// assert!(bytes.len() < json.len()); // 7 bytes against 23
    /// ```
    pub fn postcard<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(PostcardSerde::<T>(PhantomData))
    }
    /// Wraps a serde so that `null` reads as `None` and `None` writes `null`.
    ///
    /// ```
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::optional(Serdes::i32());
    /// assert_eq!(serde.serialize(&None).unwrap(), None); // a tombstone
    /// assert_eq!(serde.deserialize(None).unwrap(), None);
    /// let bytes = serde.serialize(&Some(5)).unwrap();
    /// assert_eq!(bytes, Some(vec![0, 0, 0, 5])); // the inner encoding
    /// assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), Some(5));
    /// ```
    pub fn optional<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(OptionSerde(inner))
    }
}

fn non_null(bytes: Option<&[u8]>) -> Result<&[u8], SerdeError> {
    bytes.ok_or(SerdeError::UnexpectedNull)
}

struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.as_bytes().to_vec()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
        let bytes = non_null(bytes)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| SerdeError::InvalidUtf8(e.to_string()))
    }
}

struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        Ok(non_null(bytes)?.to_vec())
    }
}

struct UnitSerde;
impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

/// Numbers with a fixed-width big-endian encoding.
trait FixedWidth: Sized + Send + Sync + 'static {
    const WIDTH: usize;
    fn to_be(&self) -> Vec<u8>;
    fn from_be(bytes: &[u8]) -> Self;
}

macro_rules! fixed_width {
    ($($t:ty),*) => {$(
        impl FixedWidth for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            fn to_be(&self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
            fn from_be(bytes: &[u8]) -> Self {
                let mut buf = [0u8; std::mem::size_of::<$t>()];
                buf.copy_from_slice(bytes);
                <$t>::from_be_bytes(buf)
            }
        }
    )*};
}
fixed_width!(i32, i64, u32, u64, f64);

struct FixedSerde<T>(PhantomData<fn() -> T>);
impl<T: FixedWidth> Serde<T> for FixedSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.to_be()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = non_null(bytes)?;
        if bytes.len() != T::WIDTH {
            return Err(SerdeError::WrongLength {
                expected: T::WIDTH,
                actual: bytes.len(),
            });
        }
        Ok(T::from_be(bytes))
    }
}

struct JsonSerde<T>(PhantomData<fn() -> T>);
impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| SerdeError::Json(e.to_string()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(non_null(bytes)?).map_err(|e| SerdeError::Json(e.to_string()))
    }
}

struct PostcardSerde<T>(PhantomData<fn() -> T>);
impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for PostcardSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        postcard::to_stdvec(value)
            .map(Some)
            .map_err(|e| SerdeError::Postcard(e.to_string()))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        postcard::from_bytes(non_null(bytes)?).map_err(|e| SerdeError::Postcard(e.to_string()))
    }
}

struct OptionSerde<T>(SerdeRef<T>);
impl<T: 'static> Serde<Option<T>> for OptionSerde<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match bytes {
            Some(b) => self.0.deserialize(Some(b)).map(Some),
            None => Ok(None),
        }
    }
}

macro_rules! default_serde {
    ($($t:ty => $f:ident),*) => {$(
        impl DefaultSerde for $t {
            fn default_serde() -> SerdeRef<Self> {
                Serdes::$f()
            }
        }
    )*};
}
default_serde!(String => string, Vec<u8> => bytes, i32 => i32, i64 => i64, u32 => u32,
    u64 => u64, f64 => f64, () => unit);

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::optional(T::default_serde())
    }
}

/// A serde for a pair of values, used by internal topics that carry two payloads.
/// Layout: 4-byte big-endian length of the first encoding (or `u32::MAX` for null), the first
/// encoding, then the second encoding (absent bytes mean null).
pub(crate) struct PairCodec;

impl PairCodec {
    pub(crate) fn encode(first: Option<&[u8]>, second: Option<&[u8]>) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(5 + first.map_or(0, <[u8]>::len) + second.map_or(0, <[u8]>::len));
        match first {
            Some(b) => {
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
        match second {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(b);
            }
            None => out.push(0),
        }
        out
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Option<&[u8]>, Option<&[u8]>), SerdeError> {
        let corrupt = || SerdeError::Custom("corrupt pair encoding".into());
        if bytes.len() < 5 {
            return Err(corrupt());
        }
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let (first, rest) = if len == u32::MAX {
            (None, &bytes[4..])
        } else {
            let end = 4usize.checked_add(len as usize).ok_or_else(corrupt)?;
            if bytes.len() < end + 1 {
                return Err(corrupt());
            }
            (Some(&bytes[4..end]), &bytes[end..])
        };
        let second = match rest.first() {
            Some(1) => Some(&rest[1..]),
            Some(0) if rest.len() == 1 => None,
            _ => return Err(corrupt()),
        };
        Ok((first, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: PartialEq + std::fmt::Debug + 'static>(serde: SerdeRef<T>, value: T) {
        let bytes = serde.serialize(&value).unwrap();
        assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), value);
    }

    #[test]
    fn builtins_roundtrip() {
        roundtrip(Serdes::string(), "héllo".to_string());
        roundtrip(Serdes::bytes(), vec![0, 255, 3]);
        roundtrip(Serdes::i32(), -7);
        roundtrip(Serdes::i64(), i64::MIN);
        roundtrip(Serdes::u32(), 9);
        roundtrip(Serdes::u64(), u64::MAX);
        roundtrip(Serdes::f64(), 2.5);
        roundtrip(Serdes::unit(), ());
        roundtrip(Serdes::optional(Serdes::string()), None);
        roundtrip(Serdes::optional(Serdes::string()), Some("x".into()));
        roundtrip(Serdes::json::<Vec<u32>>(), vec![1, 2]);
        roundtrip(Serdes::postcard::<(String, i64)>(), ("a".into(), -1));
    }

    #[test]
    fn integers_match_kafka_big_endian_layout() {
        assert_eq!(
            Serdes::i64().serialize(&1).unwrap().unwrap(),
            vec![0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(Serdes::i32().serialize(&-1).unwrap().unwrap(), vec![255; 4]);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert_eq!(
            Serdes::i64().deserialize(Some(b"abc")),
            Err(SerdeError::WrongLength {
                expected: 8,
                actual: 3
            })
        );
        assert!(matches!(
            Serdes::string().deserialize(Some(&[0xff, 0xfe])),
            Err(SerdeError::InvalidUtf8(_))
        ));
        assert!(matches!(
            Serdes::json::<Vec<u32>>().deserialize(Some(b"{")),
            Err(SerdeError::Json(_))
        ));
        assert!(matches!(
            Serdes::postcard::<String>().deserialize(Some(&[200])),
            Err(SerdeError::Postcard(_))
        ));
        assert_eq!(
            Serdes::string().deserialize(None),
            Err(SerdeError::UnexpectedNull)
        );
    }

    #[test]
    fn pair_codec_roundtrips_and_rejects_garbage() {
        for (a, b) in [
            (Some(&b"k"[..]), Some(&b"v"[..])),
            (None, Some(&b""[..])),
            (Some(&b""[..]), None),
            (None, None),
        ] {
            let enc = PairCodec::encode(a, b);
            assert_eq!(PairCodec::decode(&enc).unwrap(), (a, b));
        }
        assert!(PairCodec::decode(&[0, 0, 0, 9, 1]).is_err());
        assert!(PairCodec::decode(&[1]).is_err());
    }
}
