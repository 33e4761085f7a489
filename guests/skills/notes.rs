//! notes: a skill written in Rust (no crates, std only, built by guests/build.sh with Debian's
//! rustc and its wasm32-wasi standard library). It keeps notes in the skill's memory and asks
//! the AI about them.
//!
//! Input (JSON): {"add": "text"} appends a note; {"ask": "question"} asks the AI with the
//! notes as context; {"clear": true} forgets them; {} lists them.
//! Output: {"notes": [...], "count": N} and, for "ask", {"answer": "..."}; {"error": "..."} on failure.
//!
//! memory_set is imported without a result here (the seed's declaration); the C samples
//! import it with one. Both link.

use std::alloc::{alloc as raw_alloc, dealloc as raw_dealloc, Layout};
use std::ffi::CStr;
use std::os::raw::c_char;

#[link(wasm_import_module = "cis")]
extern "C" {
    fn ai_prompt(prompt: *const u8, prompt_len: i32, result: *mut u8, result_cap: i32) -> i32;
    fn memory_get(key: *const u8, key_len: i32, value: *mut u8, value_cap: i32) -> i32;
    fn memory_set(key: *const u8, key_len: i32, value: *const u8, value_len: i32);
}

const ENOENT: i32 = 2;
const NOTES_KEY: &str = "notes";

#[no_mangle]
pub extern "C" fn alloc(size: i32) -> *mut u8 {
    let layout = match Layout::from_size_align(size.max(1) as usize, 8) {
        Ok(l) => l,
        Err(_) => return std::ptr::null_mut(),
    };
    unsafe { raw_alloc(layout) }
}

#[no_mangle]
pub extern "C" fn dealloc(ptr: *mut u8, size: i32) {
    if ptr.is_null() {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(size.max(1) as usize, 8) {
        unsafe { raw_dealloc(ptr, layout) }
    }
}

/// Calls a snprintf-style host function: a first try with a small buffer, then once more
/// with room for the whole result (the host keeps it, so the request is not repeated).
fn sized(call: &dyn Fn(*mut u8, i32) -> i32) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; 256];
    let mut n = call(buf.as_mut_ptr(), buf.len() as i32);
    if n > buf.len() as i32 {
        buf = vec![0u8; n as usize];
        n = call(buf.as_mut_ptr(), buf.len() as i32);
    }
    if n < 0 {
        return Err(n);
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn get(key: &str) -> Result<Option<String>, i32> {
    match sized(&|p, c| unsafe { memory_get(key.as_ptr(), key.len() as i32, p, c) }) {
        Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
        Err(e) if e == -ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

fn set(key: &str, value: &str) {
    unsafe { memory_set(key.as_ptr(), key.len() as i32, value.as_ptr(), value.len() as i32) }
}

fn ask(prompt: &str) -> Result<String, i32> {
    sized(&|p, c| unsafe { ai_prompt(prompt.as_ptr(), prompt.len() as i32, p, c) })
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The string value of `key` in a flat JSON object (enough for this skill's input).
fn json_string(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{}\"", key);
    let start = json.find(&pattern)? + pattern.len();
    let rest = json[start..].trim_start().strip_prefix(':')?.trim_start();
    let mut chars = rest.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn json_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn run(input: &str) -> Result<String, String> {
    let mut notes: Vec<String> = match get(NOTES_KEY) {
        Ok(Some(text)) => text.lines().map(str::to_string).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("memory_get failed: {}", e)),
    };
    let mut answer = None;
    if input.contains("\"clear\"") {
        notes.clear();
        set(NOTES_KEY, "");
    } else if let Some(note) = json_string(input, "add") {
        notes.push(note.replace('\n', " "));
        set(NOTES_KEY, &notes.join("\n"));
    } else if let Some(question) = json_string(input, "ask") {
        let prompt = format!(
            "Answer the question using only these notes.\n\nNotes:\n- {}\n\nQuestion: {}",
            notes.join("\n- "),
            question
        );
        answer = Some(ask(&prompt).map_err(|e| format!("ai_prompt failed: {}", e))?);
    }
    let list: Vec<String> = notes.iter().map(|n| json_quote(n)).collect();
    let mut out = format!("{{\"notes\":[{}],\"count\":{}", list.join(","), notes.len());
    if let Some(a) = answer {
        out.push_str(&format!(",\"answer\":{}", json_quote(&a)));
    }
    out.push('}');
    Ok(out)
}

#[no_mangle]
pub extern "C" fn execute(input: *const c_char) -> *const u8 {
    let input = unsafe { CStr::from_ptr(input) }.to_string_lossy().into_owned();
    let out = match run(&input) {
        Ok(json) => json,
        Err(e) => format!("{{\"error\":{}}}", json_quote(&e)),
    };
    // NUL-terminated and leaked: the host reads it after execute returns, and the instance ends.
    let mut bytes = out.into_bytes();
    bytes.push(0);
    Box::leak(bytes.into_boxed_slice()).as_ptr()
}
