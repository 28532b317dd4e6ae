//! Any `serde` type stored under a key (feature `serde`), in an encoding
//! the caller names, so what is on disk is documented by the call that
//! wrote it:
//! - [`Json`]: JSON text, stored as a string value (readable from
//!   `redis-cli`, any language);
//! - [`Postcard`]: the `postcard` crate's compact binary format, stored as
//!   a bytes value (Rust readers; smaller, faster, not self-describing).
//!
//! Reading with another codec than the one that wrote fails with
//! [`Error::Codec`], never with a wrong value passed off as right.

use serde::Serialize;
use serde::de::DeserializeOwned;

use jubilant_core::db::Value;

use crate::{Error, Result};

/// An encoding of `serde` values into stored values.
///
/// ```
/// use jubilant::codec::{Codec, Json};
/// let value = Json::encode(&vec![1, 2])?;
/// assert_eq!(value, jubilant::Value::from("[1,2]"));
/// assert_eq!(Json::decode::<Vec<i32>>(&value)?, vec![1, 2]);
/// # Ok::<(), String>(())
/// ```
pub trait Codec {
    /// Encodes `value`.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, String>;
    /// Decodes what [`Codec::encode`] made.
    fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, String>;
}

/// JSON text, stored as a string value.
///
/// ```
/// use jubilant::codec::{Codec, Json};
/// assert_eq!(Json::encode("hi")?, jubilant::Value::from("\"hi\""));
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, String> {
        serde_json::to_string(value)
            .map(Value::String)
            .map_err(|error| error.to_string())
    }

    fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
        let bytes = value
            .as_bytes()
            .ok_or_else(|| format!("a {:?} value is not JSON text", value.value_type()))?;
        serde_json::from_slice(bytes).map_err(|error| error.to_string())
    }
}

/// `postcard`'s binary format, stored as a bytes value.
///
/// ```
/// use jubilant::codec::{Codec, Postcard};
/// let value = Postcard::encode(&(1u8, true))?;
/// assert_eq!(Postcard::decode::<(u8, bool)>(&value)?, (1, true));
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl Codec for Postcard {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, String> {
        postcard::to_stdvec(value)
            .map(Value::Bytes)
            .map_err(|error| error.to_string())
    }

    fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
        let Value::Bytes(bytes) = value else {
            return Err(format!(
                "a {:?} value is not postcard bytes",
                value.value_type()
            ));
        };
        postcard::from_bytes(bytes).map_err(|error| error.to_string())
    }
}

fn codec_error(key: &[u8], doing: &'static str, reason: String) -> Error {
    Error::Codec {
        key: String::from_utf8_lossy(key).into_owned(),
        doing,
        reason,
    }
}

/// `value` encoded by `C`, or the error naming `key`.
fn encoded<C: Codec, T: Serialize + ?Sized>(key: &[u8], value: &T) -> Result<Value> {
    C::encode(value).map_err(|reason| codec_error(key, "encode", reason))
}

/// `found` decoded by `C`, or the error naming `key`.
fn decoded<C: Codec, T: DeserializeOwned>(
    key: &[u8],
    found: Option<(Value, u64)>,
) -> Result<Option<(T, u64)>> {
    found
        .map(|(value, revision)| {
            C::decode(&value)
                .map(|decoded| (decoded, revision))
                .map_err(|reason| codec_error(key, "decode", reason))
        })
        .transpose()
}

impl crate::Db {
    /// Stores `value` under `key`, encoded by `C`; answers the revision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::codec::Json;
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct User { name: String, age: u32 }
    /// let ada = User { name: "Ada".into(), age: 36 };
    /// db.set_as::<Json, _>("user:1", &ada).await?;
    /// let (read, _revision) = db.get_as::<Json, User>("user:1").await?.expect("stored");
    /// assert_eq!(read, ada);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_as<C: Codec, T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<u64> {
        let key = key.as_ref();
        self.set(key, encoded::<C, T>(key, value)?).await
    }

    /// The value of `key` decoded by `C`, and its revision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::open(dir.path()).await?;
    /// use jubilant::codec::{Json, Postcard};
    /// db.set_as::<Postcard, _>("point", &(3i32, 4i32)).await?;
    /// assert_eq!(db.get_as::<Postcard, (i32, i32)>("point").await?.map(|(p, _)| p), Some((3, 4)));
    /// assert!(matches!(db.get_as::<Json, (i32, i32)>("point").await, Err(jubilant::Error::Codec { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_as<C: Codec, T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(T, u64)>> {
        let key = key.as_ref();
        decoded::<C, T>(key, self.get(key).await?)
    }
}

impl crate::blocking::Db {
    /// Stores `value` under `key`, encoded by `C` (see
    /// [`crate::Db::set_as`]).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// use jubilant::codec::Json;
    /// db.set_as::<Json, _>("tags", &["a", "b"])?;
    /// assert_eq!(db.get("tags")?.map(|(v, _)| v), Some(r#"["a","b"]"#.into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_as<C: Codec, T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<u64> {
        let key = key.as_ref();
        self.set(key, encoded::<C, T>(key, value)?)
    }

    /// The value of `key` decoded by `C` (see [`crate::Db::get_as`]).
    ///
    /// ```
    /// # fn main() -> Result<(), jubilant::Error> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = jubilant::blocking::open(dir.path())?;
    /// use jubilant::codec::Postcard;
    /// db.set_as::<Postcard, _>("n", &42u64)?;
    /// assert_eq!(db.get_as::<Postcard, u64>("n")?.map(|(n, _)| n), Some(42));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_as<C: Codec, T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(T, u64)>> {
        let key = key.as_ref();
        decoded::<C, T>(key, self.get(key)?)
    }
}
