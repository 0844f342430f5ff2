// pm2 process file for text3d nodes (install pm2 with `npm install -g pm2`).
//
//   NETUID=<N> NETWORK=test VALIDATOR_WALLET=text3d-validator \
//       pm2 start scripts/ecosystem.config.js --only text3d-llava,text3d-validator
//   NETUID=<N> NETWORK=test MINER_WALLET=text3d-miner AXON_PORT=8091 \
//       pm2 start scripts/ecosystem.config.js --only text3d-miner
//   NETWORK=devnet DEVNET_DB=$PWD/chain.db MINER_WALLET=miner1 pm2 start scripts/ecosystem.config.js --only text3d-miner
//
// Variables (read when pm2 loads this file):
//   NETUID            the subnet; REQUIRED (there is no default: on finney a wrong netuid is someone else's live
//                     subnet). Only the devnet profile defaults it, to 1 (what `text3d devnet init` creates).
//   NETWORK           finney (default) | test | local | devnet (the local SQLite devnet profile)
//   DEVNET_DB         the devnet's SQLite file (NETWORK=devnet only; required there)
//   MINER_WALLET, MINER_HOTKEY            the miner's wallet and hotkey       (default: miner / default)
//   VALIDATOR_WALLET, VALIDATOR_HOTKEY    the validator's wallet and hotkey   (default: validator / default)
//   WALLET_PATH       folder of the wallets (default: ~/.bittensor/wallets)
//   AXON_PORT         the miner's port (default 8091); LLAVA_PORT, LLAVA_MODEL, LLAVA_SLOTS for the captioner
//   LOG_DIR           also write rotated <role>.log files there (--logging.dir)
//   MAX_MEMORY        restart a neuron that grows past this (default 60G)
//
// Restarts: a crash restarts with exponential back-off (pm2's exp_backoff_restart_delay, up to 15 s apart).
// A configuration error never restarts: the neurons and `text3d llava` exit with status 78 for those
// (a bad flag, an unregistered hotkey, a missing model), and `stop_exit_codes: [78]` stops the app;
// `pm2 logs <app>` shows the one sentence that says what to fix. Any other flag of the neurons can be set
// as a TEXT3D_<SECTION>__<NAME> variable in the app's environment (see `text3d miner --help`).
const path = require("path");

const root = path.resolve(__dirname, "..");
const python = path.join(root, ".venv", "bin", "python");
const env = (name, fallback) => (process.env[name] !== undefined && process.env[name] !== "" ? process.env[name] : fallback);
const EXIT_CONFIG = 78;
const NETWORKS = ["finney", "test", "local", "devnet"];

function chainArgs() {
  const network = env("NETWORK", "finney");
  if (!NETWORKS.includes(network)) {
    throw new Error(`NETWORK=${network} is not one of ${NETWORKS.join(", ")}`);
  }
  const netuid = env("NETUID", network === "devnet" ? "1" : undefined);
  if (netuid === undefined) {
    throw new Error(
      `NETUID is not set: give the subnet explicitly, e.g. NETUID=<N> NETWORK=${network} pm2 start ` +
        "scripts/ecosystem.config.js (no default: on finney a wrong netuid is someone else's live subnet)"
    );
  }
  if (!/^[0-9]+$/.test(netuid) || Number(netuid) < 1 || Number(netuid) > 65535) {
    throw new Error(`NETUID=${netuid} is not a subnet number (1-65535)`);
  }
  const args = ["--netuid", netuid, "--subtensor.network", network];
  if (network === "devnet") {
    const db = env("DEVNET_DB", undefined);
    if (db === undefined) {
      throw new Error("NETWORK=devnet needs DEVNET_DB=<path of the devnet's SQLite file> (`text3d devnet init`)");
    }
    args.push("--devnet.db", path.resolve(db));
  }
  return args;
}

function walletArgs(role, fallbackName) {
  const upper = role.toUpperCase();
  const args = ["--wallet.name", env(`${upper}_WALLET`, fallbackName), "--wallet.hotkey", env(`${upper}_HOTKEY`, "default")];
  if (env("WALLET_PATH", undefined) !== undefined) args.push("--wallet.path", env("WALLET_PATH"));
  return args;
}

const logArgs = () => (env("LOG_DIR", undefined) !== undefined ? ["--logging.dir", env("LOG_DIR")] : []);

const app = (name, args) => ({
  name,
  cwd: root,
  script: python,
  args,
  interpreter: "none",
  autorestart: true,
  exp_backoff_restart_delay: 1000, // 1 s, doubling on each crash, at most 15 s; reset after 30 s of uptime
  stop_exit_codes: [EXIT_CONFIG], // a configuration error: restarting cannot fix it
  kill_timeout: 30000, // the validator finishes its step and saves its state on SIGTERM
  max_memory_restart: env("MAX_MEMORY", "60G"),
  env: { PYTHONUNBUFFERED: "1" },
});

const chain = chainArgs();
const llavaPort = env("LLAVA_PORT", "8080");

module.exports = {
  apps: [
    app("text3d-llava", [
      "-m", "text3d.cli.main", "llava",
      "--models", env("LLAVA_MODEL", "7b"),
      "--port", llavaPort,
      "-np", env("LLAVA_SLOTS", "4"),
    ]),
    app("text3d-validator", [
      "-m", "neurons.validator", ...chain, ...walletArgs("validator", "validator"),
      "--captioner", `http://127.0.0.1:${llavaPort}`, ...logArgs(),
    ]),
    app("text3d-miner", [
      "-m", "neurons.miner", ...chain, ...walletArgs("miner", "miner"),
      "--axon.port", env("AXON_PORT", "8091"), ...logArgs(),
    ]),
  ],
};
