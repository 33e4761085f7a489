/**
 * Thin bindings to the message handlers of the libraries PortAudio probes when it initializes:
 * libjack (`jack_set_error_function`, `jack_set_info_function`) and libasound
 * (`snd_lib_error_set_handler`). Where no JACK server runs, libjack prints "Cannot connect to
 * server…" lines on stderr at every Pa_Initialize, and ALSA's plugins print "ALSA lib …" for
 * the devices they cannot open: noise on a CLI whose stderr carries one line per failure, while
 * PortAudio reports what matters through its own error codes.
 *
 * `quietly` points each handler at a native function of the handler's shape that prints
 * nothing, runs its callback, and restores each library's default (NULL means the default to
 * both). The stand-in is libc's `strlen`: it only reads the string it is given. A Deno
 * callback would do as well on this thread, but the libraries may call their handlers from
 * threads of their own, where calling into JavaScript is not safe. A library that is not
 * installed is left out.
 */

const RTLD_DEFAULT = null;

const LIBS = {
  jack: {
    path: "libjack.so.0",
    symbols: {
      jack_set_error_function: { parameters: ["pointer"], result: "void" },
      jack_set_info_function: { parameters: ["pointer"], result: "void" },
    },
  },
  alsa: {
    path: "libasound.so.2",
    symbols: { snd_lib_error_set_handler: { parameters: ["pointer"], result: "i32" } },
  },
  libc: {
    path: "libc.so.6",
    symbols: { dlsym: { parameters: ["pointer", "buffer"], result: "pointer" } },
  },
} as const;

type Handlers = {
  jack?: Deno.DynamicLibrary<typeof LIBS.jack.symbols>["symbols"];
  alsa?: Deno.DynamicLibrary<typeof LIBS.alsa.symbols>["symbols"];
  silent: Deno.PointerValue;
};

let handlers: Handlers | null | undefined;

function open<S extends Deno.ForeignLibraryInterface>(path: string, symbols: S) {
  try {
    return Deno.dlopen(path, symbols).symbols;
  } catch {
    return undefined; // not installed (or no FFI permission): nothing of it to quiet
  }
}

/** The libraries' handler setters and the silent stand-in, opened once; null if there is no libc. */
function load(): Handlers | null {
  if (handlers !== undefined) return handlers;
  const libc = open(LIBS.libc.path, LIBS.libc.symbols);
  const silent = libc?.dlsym(RTLD_DEFAULT, new TextEncoder().encode("strlen\0")) ?? null;
  handlers = silent === null ? null : {
    jack: open(LIBS.jack.path, LIBS.jack.symbols),
    alsa: open(LIBS.alsa.path, LIBS.alsa.symbols),
    silent,
  };
  return handlers;
}

function setHandlers(h: Handlers, handler: Deno.PointerValue): void {
  h.jack?.jack_set_error_function(handler);
  h.jack?.jack_set_info_function(handler);
  h.alsa?.snd_lib_error_set_handler(handler);
}

/** Runs `fn` with libjack's and ALSA's messages silenced, then restores their default handlers. */
export function quietly<T>(fn: () => T): T {
  const h = load();
  if (h === null) return fn();
  setHandlers(h, h.silent);
  try {
    return fn();
  } finally {
    setHandlers(h, null);
  }
}
