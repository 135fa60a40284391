//! The JavaScript store contract, how the verifier calls a store object, and
//! [`MemoryStore`].
//!
//! A store is any object with two methods (sync or async):
//!
//! ```ts
//! interface Store {
//!   load(key: string): Promise<StoredRecord | null | undefined>;
//!   compareAndSwap(key: string, expected: unknown, record: Uint8Array,
//!                  expiresAt: number): Promise<boolean>;
//! }
//! interface StoredRecord { record: Uint8Array; version: unknown }
//! ```
//!
//! `key` is `purpose:e164` (`login:+447401101801`). `load` gives the record
//! and its version, or `null` when there is none. `compareAndSwap` writes
//! `record` only if the stored version is still `expected` (`null`: only if
//! there is no record), atomically with that comparison, gives the record a
//! version it has not had before, and resolves `true`; `false` when the
//! version differed and nothing was written. Versions are opaque to the
//! verifier (a counter, a row version, a string), never `null` or
//! `undefined`. `expiresAt` (milliseconds since the Unix epoch) is when the
//! record may be dropped: use it as a TTL, never drop a record before it.
//!
//! These are the core's [`Store`](otpflow::Store) promises; the verifier's
//! guarantees (a code validates at most once, no check past the budget, the
//! failure cap across resends) rest on them. A store that throws, rejects,
//! or answers anything else fails the call with `store_unavailable` and
//! nothing after the failed step happens.

use std::cell::Cell;

use js_sys::{Array, Function, Map, Promise, Reflect, Uint8Array};
use otpflow::Record;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::{Failure, set};

/// The largest stored record read, in bytes: a record is about 130 bytes;
/// anything far larger is not one, and is refused before it is copied.
const MAX_RECORD_BYTES: u32 = 16 * 1024;

#[wasm_bindgen(typescript_custom_section)]
const STORE_TS: &'static str = r#"
/** A record as a store keeps it: the bytes and their version. */
export interface StoredRecord {
  /** The record's bytes, as `compareAndSwap` was given them. */
  record: Uint8Array;
  /** The version of this write: opaque to the verifier, never null. */
  version: unknown;
}

/**
 * Where records live, one per subject (`purpose:e164`), written only by
 * compare-and-swap. Both methods may return a value or a Promise of it.
 */
export interface Store {
  /** The record for `key` and its version, or null when there is none. */
  load(key: string): Promise<StoredRecord | null | undefined> | StoredRecord | null | undefined;
  /**
   * Writes `record` only if the stored version is still `expected` (null:
   * only if there is no record), atomically with that comparison, under a
   * version the key has not had before; true when written, false when the
   * version differed. `expiresAt` (ms since the epoch) is the earliest the
   * record may be dropped.
   */
  compareAndSwap(
    key: string,
    expected: unknown,
    record: Uint8Array,
    expiresAt: number,
  ): Promise<boolean> | boolean;
}
"#;

/// A store object, its two methods looked up once.
pub(crate) struct JsStore {
    this: JsValue,
    load: Function,
    compare_and_swap: Function,
}

impl JsStore {
    /// The store object's methods.
    pub(crate) fn new(store: &JsValue) -> Result<Self, Failure> {
        let bad = || Failure::argument("store", "an object with load and compareAndSwap methods");
        if !store.is_object() {
            return Err(bad());
        }
        let method = |name: &str| {
            Reflect::get(store, &JsValue::from_str(name))
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok())
        };
        Ok(Self {
            this: store.clone(),
            load: method("load").ok_or_else(bad)?,
            compare_and_swap: method("compareAndSwap").ok_or_else(bad)?,
        })
    }

    /// The record for `key` and its (opaque) version.
    pub(crate) async fn load(&self, key: &str) -> Result<Option<(Record, JsValue)>, Failure> {
        let returned = self
            .load
            .call1(&self.this, &JsValue::from_str(key))
            .map_err(|e| Failure::store("load threw", e))?;
        let loaded = settle(returned)
            .await
            .map_err(|e| Failure::store("load rejected", e))?;
        if loaded.is_null() || loaded.is_undefined() {
            return Ok(None);
        }
        let field = |name: &str| Reflect::get(&loaded, &JsValue::from_str(name)).ok();
        let version = field("version")
            .filter(|v| !v.is_null() && !v.is_undefined())
            .ok_or_else(|| Failure::store_contract("load gave a record without a version"))?;
        let bytes = field("record")
            .and_then(|r| r.dyn_into::<Uint8Array>().ok())
            .filter(|r| r.length() <= MAX_RECORD_BYTES)
            .ok_or_else(|| Failure::store_contract("load gave a record that is not one"))?;
        let record = Record::from_bytes(&bytes.to_vec())
            .map_err(|_| Failure::store_contract("load gave a record that does not decode"))?;
        Ok(Some((record, version)))
    }

    /// Writes `record` if the version is still `expected` (`null`: absent):
    /// `true` when written, `false` on a conflict.
    pub(crate) async fn compare_and_swap(
        &self,
        key: &str,
        expected: &JsValue,
        record: &Record,
        expires_at_ms: f64,
    ) -> Result<bool, Failure> {
        let bytes = Uint8Array::from(record.to_bytes().as_slice());
        let returned = self
            .compare_and_swap
            .call4(
                &self.this,
                &JsValue::from_str(key),
                expected,
                &bytes,
                &JsValue::from_f64(expires_at_ms),
            )
            .map_err(|e| Failure::store("compareAndSwap threw", e))?;
        let swapped = settle(returned)
            .await
            .map_err(|e| Failure::store("compareAndSwap rejected", e))?;
        swapped
            .as_bool()
            .ok_or_else(|| Failure::store_contract("compareAndSwap gave neither true nor false"))
    }
}

/// What a method returned, awaited if it is a promise (or any thenable).
async fn settle(value: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::resolve(&value)).await
}

/// A store in memory, for one process (tests, a single node instance, a
/// browser tab). It keeps the store contract, so the verifier treats it like
/// any other store object; records are not dropped by themselves: call
/// `purgeExpired()` now and then.
///
/// ```js
/// const store = new MemoryStore();
/// const verifier = new Verifier(store, keys, new Policy());
/// store.size;           // records held
/// store.purgeExpired(); // drops those past their expiresAt
/// ```
///
/// The records live in a JavaScript `Map` (key → `[bytes, version,
/// expiresAt]`), not in the module's memory: a wasm memory never shrinks,
/// and the map costs the module no code of its own.
#[wasm_bindgen]
#[derive(Debug)]
pub struct MemoryStore {
    records: Map,
    last_version: Cell<f64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            records: Map::new(),
            last_version: Cell::new(0.0),
        }
    }
}

/// The stored entry under `key`: `[bytes, version, expiresAt]`, or `None`.
fn entry(records: &Map, key: &JsValue) -> Option<Array> {
    records.get(key).dyn_into::<Array>().ok()
}

#[wasm_bindgen]
impl MemoryStore {
    /// An empty store.
    #[wasm_bindgen(constructor)]
    pub fn new() -> MemoryStore {
        Self::default()
    }

    /// The record for `key` and its version (a number), or `null`. The
    /// bytes are a copy: changing them changes nothing stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<StoredRecord | null>")]
    pub fn load(&self, key: &str) -> Promise {
        let found = match entry(&self.records, &JsValue::from_str(key)) {
            None => JsValue::NULL,
            Some(entry) => {
                let object: JsValue = js_sys::Object::new().into();
                set(&object, "record", Uint8Array::new(&entry.get(0)));
                set(&object, "version", entry.get(1));
                object
            }
        };
        Promise::resolve(&found)
    }

    /// Writes (a copy of) `record` if the stored version is still
    /// `expected` (`null`: no record): resolves `true` when written, `false`
    /// otherwise.
    #[wasm_bindgen(js_name = compareAndSwap, unchecked_return_type = "Promise<boolean>")]
    pub fn compare_and_swap(
        &self,
        key: &str,
        #[wasm_bindgen(unchecked_param_type = "unknown")] expected: &JsValue,
        record: &Uint8Array,
        #[wasm_bindgen(js_name = expiresAt)] expires_at: f64,
    ) -> Promise {
        let key = JsValue::from_str(key);
        let matches = match entry(&self.records, &key) {
            None => expected.is_null() || expected.is_undefined(),
            Some(entry) => entry
                .get(1)
                .as_f64()
                .is_some_and(|v| expected.as_f64() == Some(v)),
        };
        if !matches {
            return Promise::resolve(&JsValue::FALSE);
        }
        let version = self.last_version.get() + 1.0;
        self.last_version.set(version);
        let stored = Array::of3(
            &Uint8Array::new(record),
            &JsValue::from_f64(version),
            &JsValue::from_f64(expires_at),
        );
        self.records.set(&key, &stored);
        Promise::resolve(&JsValue::TRUE)
    }

    /// Records held.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.records.size()
    }

    /// Drops every record whose `expiresAt` is at or before `now`
    /// (milliseconds since the epoch; `Date.now()` when omitted) and
    /// returns how many were dropped.
    #[wasm_bindgen(js_name = purgeExpired)]
    pub fn purge_expired(&self, now: Option<f64>) -> u32 {
        let now = now.unwrap_or_else(js_sys::Date::now);
        let mut dropped = 0;
        // The keys first: a Map is not changed while it is iterated.
        for key in Array::from(&self.records.keys()).iter() {
            let expires_at = entry(&self.records, &key).and_then(|e| e.get(2).as_f64());
            // A NaN `expiresAt` (or `now`) compares false: such a record is kept.
            if expires_at.is_some_and(|t| t <= now) {
                self.records.delete(&key);
                dropped += 1;
            }
        }
        dropped
    }
}
