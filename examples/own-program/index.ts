// A homelab's own Pulumi program: its own things, and a signed Nix binary cache on its MinIO from the nix-cache
// package (docs/library.md). This project's settings are in its own config namespace (homelab:*, Pulumi.yaml);
// the nix-cache provider reads MinIO's endpoint and admin credentials from the nix-cache namespace:
//   pulumi config set nix-cache:endpoint http://minio.homelab.local:9000
//   pulumi config set nix-cache:adminUser minioadmin
//   pulumi config set --secret nix-cache:adminPassword ...
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { NixCache } from "nix-cache";
import { HostFile } from "./hostFile";

const config = new pulumi.Config();
const minio = new pulumi.Config("nix-cache");

const cache = new NixCache("cache", {
  endpoint: minio.require("endpoint"),
  bucket: config.require("cacheBucket"),
  keyName: config.require("keyName"),
  // What this homelab wants: the closure-safe GC, a month of history.
  retention: "gc",
  retainDays: 30,
});

// The clients' NixOS module, written where this homelab's host configurations import it from.
const clientModule = new HostFile("nix-cache-module", {
  path: path.resolve(config.require("moduleFile")),
  content: cache.nixosModule,
});

export const substituterUrl = cache.substituterUrl;
export const publicKey = cache.publicKey;
export const pushUrl = cache.pushUrl;
export const builderAccessKey = cache.builderAccessKey;
export const builderSecretKey = cache.builderSecretKey;
export const moduleFile = clientModule.path;
