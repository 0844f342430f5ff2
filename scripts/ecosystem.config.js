// pm2 process file for text3d nodes (install pm2 with `npm install -g pm2`).
//
//   NETUID=<N> NETWORK=test VALIDATOR_WALLET=text3d-validator \
//       pm2 start scripts/ecosystem.config.js --only text3d-llava,text3d-validator
//   NETUID=<N> NETWORK=test MINER_WALLET=text3d-miner AXON_PORT=8091 \
//       pm2 start scripts/ecosystem.config.js --only text3d-miner
//   NETWORK=devnet DEVNET_DB=$PWD/chain.db MINER_WALLET=miner1 pm2 start scripts/ecosystem.config.js --only text3d-miner
//   NETUID=<N> NETWORK=finney GENERATION_GPUS=0,1,2,3 MINER_WALLET=text3d-miner \
//       pm2 start scripts/ecosystem.config.js --only text3d-generation-0,text3d-generation-1,text3d-generation-2,text3d-generation-3,text3d-miner
//   NETUID=<N> NETWORK=finney pm2 start scripts/ecosystem.config.js --only text3d-gateway
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
//   GATEWAY_PORT      the gateway's port (default 8095; it binds 127.0.0.1: put a TLS proxy in front)
//   GATEWAY_URL       the gateway the validator works for (--gateway.url; unset: no organic work)
//   GENERATION_GPUS   comma-separated GPU indices: one `text3d generation-server` app per GPU
//                     (text3d-generation-<gpu>, CUDA_VISIBLE_DEVICES=<gpu>) and the miner generates
//                     through them (--generation.endpoints); unset: the miner generates in-process
//   GENERATION_PORT   the first generation server's port (default 8100; the next GPU takes the next)
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

// `sub`: a folder of its own under LOG_DIR, for apps of one role that run side by side (the generation
// servers): rotating one file from several processes loses lines.
const logArgs = (sub = "") =>
  env("LOG_DIR", undefined) !== undefined ? ["--logging.dir", sub ? path.join(env("LOG_DIR"), sub) : env("LOG_DIR")] : [];

const app = (name, args, extraEnv = {}) => ({
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
  env: { PYTHONUNBUFFERED: "1", ...extraEnv },
});

function port(name, fallback) {
  const value = env(name, fallback);
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new Error(`${name}=${value} is not a port (1-65535)`);
  }
  return Number(value);
}

// One generation server per GPU in GENERATION_GPUS, on consecutive ports from GENERATION_PORT; none
// may take a port another app of this file binds on the same machine.
function generationServers(taken) {
  const gpus = env("GENERATION_GPUS", "");
  if (gpus === "") return [];
  const list = gpus.split(",").map((gpu) => gpu.trim());
  if (list.some((gpu) => !/^[0-9]+$/.test(gpu)) || new Set(list).size !== list.length) {
    throw new Error(`GENERATION_GPUS=${gpus} is not a list of distinct GPU indices, e.g. 0,1,2,3`);
  }
  const first = port("GENERATION_PORT", "8100");
  return list.map((gpu, i) => {
    const serverPort = first + i;
    if (serverPort > 65535 || taken[serverPort] !== undefined) {
      throw new Error(
        `the generation server of GPU ${gpu} would take port ${serverPort}` +
          (taken[serverPort] !== undefined ? `, which ${taken[serverPort]} binds` : "") +
          ": set GENERATION_PORT to a free range"
      );
    }
    return { gpu, port: serverPort };
  });
}

const chain = chainArgs();
// The apps of this file bind their ports on one machine, and two on one port leave one of them
// unable to start: a clash refuses to load instead. Returns each port mapped to its variable.
function distinctPorts(ports) {
  const taken = {};
  for (const [name, value] of Object.entries(ports)) {
    if (taken[value] !== undefined) {
      throw new Error(`${name}=${value} is the port ${taken[value]} binds: give each app its own port`);
    }
    taken[value] = name;
  }
  return taken;
}

const llavaPort = port("LLAVA_PORT", "8080");
const axonPort = port("AXON_PORT", "8091");
const gatewayPort = port("GATEWAY_PORT", "8095");
const servers = generationServers(distinctPorts({ LLAVA_PORT: llavaPort, AXON_PORT: axonPort, GATEWAY_PORT: gatewayPort }));
const endpoints = servers.map((server) => `http://127.0.0.1:${server.port}`).join(",");
const gatewayUrl = env("GATEWAY_URL", undefined);

module.exports = {
  apps: [
    app("text3d-llava", [
      "-m", "text3d.cli.main", "llava",
      "--models", env("LLAVA_MODEL", "7b"),
      "--port", String(llavaPort),
      "-np", env("LLAVA_SLOTS", "4"),
    ]),
    app("text3d-validator", [
      "-m", "neurons.validator", ...chain, ...walletArgs("validator", "validator"),
      "--captioner", `http://127.0.0.1:${llavaPort}`,
      ...(gatewayUrl !== undefined ? ["--gateway.url", gatewayUrl] : []), ...logArgs(),
    ]),
    app("text3d-miner", [
      "-m", "neurons.miner", ...chain, ...walletArgs("miner", "miner"),
      "--axon.port", String(axonPort),
      ...(servers.length ? ["--generation.endpoints", endpoints] : []), ...logArgs(),
    ]),
    // The organic API (docs/gateway.md): reads the metagraph, needs no wallet.
    app("text3d-gateway", [
      "-m", "text3d.cli.main", "gateway", ...chain, "--gateway.port", String(gatewayPort), ...logArgs(),
    ]),
    // One generator per GPU behind loopback HTTP (docs/miner-scaling.md); the miner waits for them.
    ...servers.map((server) =>
      app(`text3d-generation-${server.gpu}`, [
        "-m", "text3d.cli.main", "generation-server", "--device", "cuda",
        "--server.port", String(server.port), ...logArgs(`generation-${server.gpu}`),
      ], { CUDA_VISIBLE_DEVICES: server.gpu })
    ),
  ],
};
