//! [`PhoneNumber`] and [`PhonePolicy`]: every way a number is written, to
//! canonical E.164, with the core's guard (letters are never read as digits).

use otpflow::phone::MAX_INPUT_BYTES;
use wasm_bindgen::prelude::*;

use crate::error::Failure;
use crate::instant::{short_string, whole_u32};

/// The longest country-code argument read; a longer one is refused as
/// `phone_invalid_country_code` without being copied into the module.
const MAX_COUNTRY_CODE_UNITS: u32 = 1024;

/// A phone number in canonical E.164 form (`+447401101801`).
///
/// ```js
/// const n = PhoneNumber.parse("07401 101801");
/// n.e164;        // "+447401101801"
/// n.region;      // "GB"
/// PhoneNumber.fromParts("+44", "07401 101801").equals(n); // true
/// ```
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub struct PhoneNumber {
    inner: otpflow::PhoneNumber,
}

#[wasm_bindgen]
impl PhoneNumber {
    /// Parses a whole number as typed: national (`07401 101801`, read in the
    /// policy's default region), international (`+44 7401 101801`,
    /// `+44 (0)7401 101801`, `0044 7401 101801`) or bare digits with the
    /// country code (`447401101801`). Under the default policy (GB national
    /// input, every country, mobiles only); `policy.parse(input)` for
    /// another.
    ///
    /// # Errors
    /// An `OtpflowError` with the core's phone code (`phone_empty`,
    /// `phone_too_long`, `phone_invalid_character` with `character` and
    /// `position`, `phone_misplaced_plus`, `phone_missing_country_code`,
    /// `phone_unknown_country_code`, `phone_invalid`, `phone_not_mobile`,
    /// `phone_country_not_allowed` with `countryCode`), or
    /// `invalid_argument` when `input` is not a string.
    pub fn parse(
        #[wasm_bindgen(unchecked_param_type = "string")] input: &JsValue,
    ) -> Result<PhoneNumber, JsValue> {
        Ok(Self::parse_with(input, &otpflow::PhonePolicy::default())?)
    }

    /// Builds a number from the split form some APIs send: a country code
    /// written `+` and one to three digits, and the national number with or
    /// without its trunk `0` (`"+44"`, `"07401 101801"`). Under the default
    /// policy; `policy.fromParts(countryCode, national)` for another.
    ///
    /// # Errors
    /// `phone_missing_field` with `missing` (`["countryCode"]`,
    /// `["national"]` or both), `phone_invalid_country_code`,
    /// `phone_unknown_country_code`, then as [`parse`](Self::parse).
    #[wasm_bindgen(js_name = fromParts)]
    pub fn from_parts(
        #[wasm_bindgen(js_name = countryCode, unchecked_param_type = "string")]
        country_code: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] national: &JsValue,
    ) -> Result<PhoneNumber, JsValue> {
        Ok(Self::from_parts_with(
            country_code,
            national,
            &otpflow::PhonePolicy::default(),
        )?)
    }

    /// `+447401101801`.
    #[wasm_bindgen(getter)]
    pub fn e164(&self) -> String {
        self.inner.e164().into()
    }

    /// The E.164 digits without `+`: `447401101801`.
    #[wasm_bindgen(getter)]
    pub fn digits(&self) -> String {
        self.inner.digits().into()
    }

    /// The country calling code: `44`.
    #[wasm_bindgen(getter, js_name = countryCode)]
    pub fn country_code(&self) -> u16 {
        self.inner.country_code()
    }

    /// The national significant number: `7401101801`.
    #[wasm_bindgen(getter)]
    pub fn national(&self) -> String {
        self.inner.national().into()
    }

    /// The two-letter region (`"GB"`, `"JE"`, `"US"`), or `undefined` for
    /// non-geographic numbers and, in the slim build, non-UK numbers.
    #[wasm_bindgen(getter)]
    pub fn region(&self) -> Option<String> {
        self.inner.region().map(Into::into)
    }

    /// True when both are the same number, however each was written.
    pub fn equals(&self, other: &PhoneNumber) -> bool {
        self.inner == other.inner
    }

    /// The form for logs: the core's display of the number (use `e164` for
    /// the number itself).
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        self.inner.to_string()
    }
}

impl PhoneNumber {
    /// Parses `input` under `policy` (for the verifier's own use too).
    pub(crate) fn parse_with(
        input: &JsValue,
        policy: &otpflow::PhonePolicy,
    ) -> Result<Self, Failure> {
        let input = phone_input(input, "input")?;
        let inner = otpflow::PhoneNumber::parse(&input, policy)?;
        Ok(Self { inner })
    }

    /// Builds a number from its parts under `policy`.
    pub(crate) fn from_parts_with(
        country_code: &JsValue,
        national: &JsValue,
        policy: &otpflow::PhonePolicy,
    ) -> Result<Self, Failure> {
        let code = short_string(country_code, "countryCode", MAX_COUNTRY_CODE_UNITS)?
            .unwrap_or_else(|| "x".into());
        let national = phone_input(national, "national")?;
        let inner = otpflow::PhoneNumber::from_parts(&code, &national, policy)?;
        Ok(Self { inner })
    }

    /// The core's number.
    pub(crate) fn inner(&self) -> otpflow::PhoneNumber {
        self.inner
    }
}

/// A phone input; a longer string than the core reads becomes a stand-in
/// the core refuses as `phone_too_long`, without copying the long one.
fn phone_input(value: &JsValue, argument: &'static str) -> Result<String, Failure> {
    let max = u32::try_from(MAX_INPUT_BYTES).unwrap_or(u32::MAX);
    Ok(short_string(value, argument, max)?.unwrap_or_else(|| "0".repeat(MAX_INPUT_BYTES + 1)))
}

/// What a service accepts as a phone number: the region national input is
/// read in, the countries allowed, and whether it must be a mobile. Each
/// method returns a new policy; the one it is called on is unchanged.
///
/// ```js
/// const uk = PhonePolicy.ukOnly();                       // +44 only
/// const eu = new PhonePolicy().allowOnly([44, 353]).withDefaultRegion("IE");
/// const any = new PhonePolicy().requireMobile(false);    // landlines too
/// ```
#[wasm_bindgen]
#[derive(Clone, Debug, Default)]
pub struct PhonePolicy {
    inner: otpflow::PhonePolicy,
}

#[wasm_bindgen]
impl PhonePolicy {
    /// The default: national input read as GB, every country, mobiles only.
    #[wasm_bindgen(constructor)]
    pub fn new() -> PhonePolicy {
        Self::default()
    }

    /// UK numbers only (+44: Great Britain, Northern Ireland, Guernsey,
    /// Jersey and the Isle of Man).
    #[wasm_bindgen(js_name = ukOnly)]
    pub fn uk_only() -> PhonePolicy {
        Self {
            inner: otpflow::PhonePolicy::uk_only(),
        }
    }

    /// Only these country calling codes (`[44, 353]`); an empty list refuses
    /// every number.
    ///
    /// # Errors
    /// `invalid_argument` unless every entry is a whole number 1–999 (and
    /// there are at most 1000).
    #[wasm_bindgen(js_name = allowOnly)]
    pub fn allow_only(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number[]")] codes: &JsValue,
    ) -> Result<PhonePolicy, JsValue> {
        let bad = || Failure::argument("codes", "an array of country codes (1 to 999)");
        let array = codes.dyn_ref::<js_sys::Array>().ok_or_else(bad)?;
        if array.length() > 1000 {
            return Err(bad().into());
        }
        let mut list = Vec::new();
        for value in array.iter() {
            let code = value
                .as_f64()
                .and_then(whole_u32)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (1..=999).contains(n))
                .ok_or_else(bad)?;
            list.push(code);
        }
        Ok(Self {
            inner: self.inner.clone().allow_only(&list),
        })
    }

    /// Every country (the default).
    #[wasm_bindgen(js_name = allowAll)]
    pub fn allow_all(&self) -> PhonePolicy {
        Self {
            inner: self.inner.clone().allow_all(),
        }
    }

    /// Reads national input (no `+`) in `region`, a two-letter code in
    /// either case (`"GB"`, `"ie"`).
    ///
    /// # Errors
    /// `phone_unknown_region` for a region the metadata does not know (in the
    /// slim build, any but GB, GG, JE and IM); `invalid_argument` when
    /// `region` is not a string.
    #[wasm_bindgen(js_name = withDefaultRegion)]
    pub fn with_default_region(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] region: &JsValue,
    ) -> Result<PhonePolicy, JsValue> {
        let region = short_string(region, "region", 8)?.unwrap_or_default();
        let inner = self
            .inner
            .clone()
            .with_default_region(&region)
            .map_err(|e| Failure::from(e).into_js())?;
        Ok(Self { inner })
    }

    /// Refuses national input: every number must carry its country code.
    #[wasm_bindgen(js_name = withoutDefaultRegion)]
    pub fn without_default_region(&self) -> PhonePolicy {
        Self {
            inner: self.inner.clone().without_default_region(),
        }
    }

    /// Whether numbers must be mobiles (on by default).
    ///
    /// # Errors
    /// `invalid_argument` when `required` is not a boolean.
    #[wasm_bindgen(js_name = requireMobile)]
    pub fn require_mobile(
        &self,
        #[wasm_bindgen(unchecked_param_type = "boolean")] required: &JsValue,
    ) -> Result<PhonePolicy, JsValue> {
        let required = required
            .as_bool()
            .ok_or_else(|| Failure::argument("required", "a boolean"))?;
        Ok(Self {
            inner: self.inner.clone().require_mobile(required),
        })
    }

    /// The region national input is read in, or `undefined`.
    #[wasm_bindgen(getter, js_name = defaultRegion)]
    pub fn default_region(&self) -> Option<String> {
        self.inner.default_region().map(Into::into)
    }

    /// The allowed country calling codes, ascending, or `undefined` when
    /// every country is.
    #[wasm_bindgen(getter, js_name = allowedCountryCodes)]
    pub fn allowed_country_codes(&self) -> Option<Vec<u16>> {
        self.inner.allowed_country_codes().map(<[u16]>::to_vec)
    }

    /// Parses a whole number under this policy: see `PhoneNumber.parse`.
    ///
    /// # Errors
    /// As `PhoneNumber.parse`.
    pub fn parse(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] input: &JsValue,
    ) -> Result<PhoneNumber, JsValue> {
        Ok(PhoneNumber::parse_with(input, &self.inner)?)
    }

    /// Builds a number from its parts under this policy: see
    /// `PhoneNumber.fromParts`.
    ///
    /// # Errors
    /// As `PhoneNumber.fromParts`.
    #[wasm_bindgen(js_name = fromParts)]
    pub fn from_parts(
        &self,
        #[wasm_bindgen(js_name = countryCode, unchecked_param_type = "string")]
        country_code: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] national: &JsValue,
    ) -> Result<PhoneNumber, JsValue> {
        Ok(PhoneNumber::from_parts_with(
            country_code,
            national,
            &self.inner,
        )?)
    }

    /// Whether numbers must be mobiles.
    #[wasm_bindgen(getter, js_name = requiresMobile)]
    pub fn requires_mobile(&self) -> bool {
        self.inner.requires_mobile()
    }
}
