// pm2 process file for a production node: `pm2 start scripts/ecosystem.config.js`
// (install pm2 with `npm install -g pm2`). Each app restarts on crash with backoff;
// `pm2 logs`, `pm2 save` and `pm2 startup` work as usual. Configure with environment
// variables, e.g. NETUID=17 NETWORK=finney WALLET=validator pm2 start ... --only text3d-validator
const path = require("path");

const root = path.resolve(__dirname, "..");
const python = path.join(root, ".venv", "bin", "python");
const env = (name, fallback) => process.env[name] || fallback;

const common = [
  "--netuid", env("NETUID", "1"),
  "--subtensor.network", env("NETWORK", "finney"),
  "--wallet.hotkey", env("HOTKEY", "default"),
];

const app = (name, args) => ({
  name,
  cwd: root,
  script: python,
  args,
  interpreter: "none",
  autorestart: true,
  exp_backoff_restart_delay: 2000,
  max_memory_restart: env("MAX_MEMORY", "60G"),
  env: { PYTHONUNBUFFERED: "1" },
});

module.exports = {
  apps: [
    app("text3d-llava", [
      "-m", "neurons.cli", "llava",
      "--models", env("LLAVA_MODEL", "7b"),
      "--port", env("LLAVA_PORT", "8080"),
      "-np", env("LLAVA_SLOTS", "4"),
    ]),
    app("text3d-validator", [
      "-m", "neurons.validator", ...common,
      "--wallet.name", env("WALLET", "validator"),
      "--captioner", `http://127.0.0.1:${env("LLAVA_PORT", "8080")}`,
    ]),
    app("text3d-miner", [
      "-m", "neurons.miner", ...common,
      "--wallet.name", env("WALLET", "miner"),
      "--axon.port", env("AXON_PORT", "8091"),
    ]),
  ],
};
