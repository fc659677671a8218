// Runs a wasm32-wasip1 program (a `cargo test` binary) under Node's WASI:
//   node --no-warnings tools/wasi-run.mjs PROGRAM.wasm [ARGS...]
// The cargo runner of tools/test-wasm-kernels.sh. The program sees its
// arguments, the environment and the current directory (preopened as
// `.`); its exit code is this process's.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
if (!file) {
    console.error('usage: node tools/wasi-run.mjs PROGRAM.wasm [ARGS...]');
    process.exit(2);
}
const wasi = new WASI({
    version: 'preview1',
    args: [file, ...args],
    env: process.env,
    preopens: { '.': process.cwd() },
    returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
