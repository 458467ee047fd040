//! The few proxy-wasm host calls the filter makes, declared here so that every refusal comes
//! back as a `Result`. The SDK's own wrappers panic on unexpected statuses, and a panic traps
//! the whole VM of an Envoy worker, not just one request.

use std::ptr::null_mut;

const STATUS_OK: u32 = 0;
const STATUS_NOT_FOUND: u32 = 1;
const STATUS_EMPTY: u32 = 7;

pub const REQUEST_HEADERS: u32 = 0;
pub const RESPONSE_HEADERS: u32 = 2;
pub const REQUEST_BODY: u32 = 0;
pub const RESPONSE_BODY: u32 = 1;
pub const PLUGIN_CONFIGURATION: u32 = 7;

pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_CRITICAL: u32 = 5;

const METRIC_COUNTER: u32 = 0;

/// A host call refused with this proxy-wasm status.
#[derive(Debug, Clone, Copy)]
pub struct HostError(pub u32);

extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        additional_headers_map_data: *const u8,
        additional_headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

fn check(status: u32) -> Result<(), HostError> {
    if status == STATUS_OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Takes ownership of memory the host allocated through the SDK's `proxy_on_memory_allocate`
/// (a `Vec<u8>` of exactly `size` capacity).
///
/// # Safety
/// `data` must come from that allocator with capacity `size`, or be null.
unsafe fn take_host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Whether Envoy would print a line at `level` (so the line is formatted only then).
pub fn log_enabled(level: u32) -> bool {
    let mut current = 0u32;
    // SAFETY: `current` is a valid out-pointer.
    let status = unsafe { proxy_get_log_level(&mut current) };
    status != STATUS_OK || level >= current
}

/// All headers of a map in one host call: name and value (`None` when not UTF-8), in order.
pub fn headers(map_type: u32) -> Result<Vec<(String, Option<String>)>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `buffer`.
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    if status != STATUS_OK {
        return Err(HostError(status));
    }
    // SAFETY: as in `buffer`.
    let bytes = unsafe { take_host_bytes(data, size) };
    Ok(map_pairs(&bytes).unwrap_or_default())
}

/// Pairs of a serialized proxy-wasm map: count, then key and value lengths, then each key and
/// value followed by a NUL byte. `None` when the bytes do not add up.
fn map_pairs(bytes: &[u8]) -> Option<Vec<(String, Option<String>)>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut pairs = Vec::with_capacity(count.min(128));
    for i in 0..count {
        let (key_len, value_len) = (word(4 + i * 8)?, word(8 + i * 8)?);
        let key = bytes.get(at..at.checked_add(key_len)?)?;
        at = at.checked_add(key_len + 1)?;
        let value = bytes.get(at..at.checked_add(value_len)?)?;
        at = at.checked_add(value_len + 1)?;
        pairs.push((
            String::from_utf8_lossy(key).into_owned(),
            std::str::from_utf8(value).ok().map(str::to_owned),
        ));
    }
    Some(pairs)
}

/// Writes an info line, formatted only when Envoy prints info lines.
pub fn info_with(message: impl FnOnce() -> String) {
    if log_enabled(LOG_INFO) {
        log(LOG_INFO, &message());
    }
}

/// Writes a log line; a refused log is dropped.
pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length describe a live `&str`.
    unsafe {
        proxy_log(level, message.as_ptr(), message.len());
    }
}

/// Bytes `start..start+max` of a buffer; `Ok(None)` when the buffer is absent or empty.
pub fn buffer(buffer_type: u32, start: usize, max: usize) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer it allocated and its length into our locals.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, start, max, &mut data, &mut size) };
    match status {
        // SAFETY: on success `data`/`size` describe a host allocation we now own.
        STATUS_OK => Ok(Some(unsafe { take_host_bytes(data, size) })),
        STATUS_NOT_FOUND | STATUS_EMPTY => Ok(None),
        other => Err(HostError(other)),
    }
}

/// Replaces bytes `start..start+size` of a buffer with `data`.
pub fn set_buffer(
    buffer_type: u32,
    start: usize,
    size: usize,
    data: &[u8],
) -> Result<(), HostError> {
    // SAFETY: pointer and length describe a live slice.
    check(unsafe { proxy_set_buffer_bytes(buffer_type, start, size, data.as_ptr(), data.len()) })
}

/// A header value as bytes (header values are bytes, not C strings: NUL and non-UTF-8 stay).
pub fn header(map_type: u32, name: &str) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `buffer`.
    let status = unsafe {
        proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    match status {
        // SAFETY: as in `buffer`.
        STATUS_OK => Ok(Some(unsafe { take_host_bytes(data, size) })),
        STATUS_NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

/// Sets a header, replacing every existing value.
pub fn set_header(map_type: u32, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers and lengths describe live `&str`s.
    check(unsafe {
        proxy_replace_header_map_value(
            map_type,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes a header; removing an absent header is not an error.
pub fn remove_header(map_type: u32, name: &str) -> Result<(), HostError> {
    // SAFETY: pointer and length describe a live `&str`.
    match unsafe { proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()) } {
        STATUS_OK | STATUS_NOT_FOUND => Ok(()),
        other => Err(HostError(other)),
    }
}

/// Defines a counter and returns its id.
pub fn define_counter(name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: pointer and length describe a live `&str`; `id` is a valid out-pointer.
    check(unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds one to a counter; a refused increment is dropped.
pub fn increment(id: u32) {
    // SAFETY: plain values.
    unsafe {
        proxy_increment_metric(id, 1);
    }
}

// --- Added for issue 6 (URL identity): header lists, added headers, local replies. ---

/// Every value of a header, in order (`WWW-Authenticate` may come more than once). Values
/// are bytes: NUL and non-UTF-8 stay as they came.
pub fn header_values(map_type: u32, name: &str) -> Result<Vec<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer it allocated and its length into our locals.
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    let bytes = match status {
        // SAFETY: on success `data`/`size` describe a host allocation we now own.
        STATUS_OK => unsafe { take_host_bytes(data, size) },
        STATUS_NOT_FOUND | STATUS_EMPTY => return Ok(Vec::new()),
        other => return Err(HostError(other)),
    };
    Ok(crate::header_pairs::decode(&bytes)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.to_vec())
        .collect())
}

/// Adds a header value, keeping the existing ones (for list headers such as `Vary`).
pub fn add_header(map_type: u32, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers and lengths describe live `&str`s.
    check(unsafe {
        proxy_add_header_map_value(
            map_type,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Serializes header pairs in the proxy-wasm map format: count, then each key and value
/// length, then each key and value followed by a NUL byte.
fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Answers the request from the filter; the request is not forwarded.
pub fn send_local_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), HostError> {
    let map = serialize_map(headers);
    let details = "mcp_oauth_guard";
    // SAFETY: every pointer and length describes a live buffer for the duration of the call.
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    })
}
