"""`sam build` as the README runs it: non-interactive, offline, both bootstraps.

SAM's Rust build (BuildMethod rust-cargolambda) "is in preview release", and a build must opt
in (samconfig.toml `beta_features = true`, `--beta-features`, or SAM_CLI_BETA_RUST_CARGO_LAMBDA)
or SAM CLI prompts, and aborts when nobody can answer:
https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/building-rust.html
samconfig.toml is read from the project root by `sam build` and `sam deploy`:
https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-sam-cli-config.html
The functions run on provided.al2023 (Amazon Linux 2023, glibc 2.34):
https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
https://docs.aws.amazon.com/linux/al2023/ug/compare-with-al2.html
"""

import os
import re
import shlex
import subprocess
import tomllib
import unittest
from pathlib import Path

from .support import ROOT, load_template, resources

AL2023_GLIBC = (2, 34)


def samconfig() -> dict:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


class SamConfig(unittest.TestCase):
    def test_sam_build_opts_in_to_the_rust_beta_and_finds_the_template_without_flags(self):
        build = samconfig()["default"]["build"]["parameters"]
        self.assertIs(build["beta_features"], True)
        self.assertEqual(build["template_file"], "infra/template.yaml")
        self.assertTrue((ROOT / build["template_file"]).exists())

    def test_sam_deploy_has_the_iam_capability_and_defaults_for_every_parameter_it_sets(self):
        deploy = samconfig()["default"]["deploy"]["parameters"]
        self.assertIn("CAPABILITY_NAMED_IAM", deploy["capabilities"].split())
        parameters = load_template()["Parameters"]
        for pair in shlex.split(deploy["parameter_overrides"]):
            name, value = pair.split("=", 1)
            self.assertIn(name, parameters, f"samconfig.toml sets {name}, which the template does not have")
            allowed = parameters[name].get("AllowedValues")
            if allowed:
                self.assertIn(value, allowed, name)
        # Parameters without a default are asked for by `sam deploy --guided`, never invented.
        self.assertIn("NotificationEmail", parameters)
        self.assertNotIn("NotificationEmail", deploy["parameter_overrides"])

    def test_the_linker_is_pinned_in_the_crate_so_cargo_lambda_never_asks(self):
        manifest = tomllib.loads((ROOT / "crates" / "aws" / "Cargo.toml").read_text())
        compiler = manifest["package"]["metadata"]["lambda"]["build"]["compiler"]
        self.assertEqual(compiler["type"], "cargo")
        config = tomllib.loads((ROOT / ".cargo" / "config.toml").read_text())
        self.assertEqual(config["target"]["aarch64-unknown-linux-gnu"]["linker"], "aarch64-linux-gnu-gcc")

    def test_arm64_is_the_default_and_x86_64_selectable_and_sam_passes_it_to_cargo_lambda(self):
        template = load_template()
        parameter = template["Parameters"]["Architecture"]
        self.assertEqual(parameter["Default"], "arm64")
        self.assertEqual(sorted(parameter["AllowedValues"]), ["arm64", "x86_64"])
        self.assertEqual(template["Globals"]["Function"]["Architectures"], [{"Ref": "Architecture"}])
        for name, function in resources(template, "AWS::Serverless::Function").items():
            self.assertNotIn("Architectures", function["Properties"], name)
        # The command SAM CLI's builder runs for each architecture (aws-lambda-builders).
        from aws_lambda_builders.workflows.rust_cargo.actions import RustCargoLambdaBuildAction
        from aws_lambda_builders.workflow import BuildMode

        class Cargo:
            binary_path = "cargo"

        for architecture, flag in (("arm64", ["--arm64"]), ("x86_64", [])):
            action = RustCargoLambdaBuildAction(
                "crates/aws", {"cargo": Cargo()}, BuildMode.RELEASE, None, "provided.al2023", architecture, "store-orders"
            )
            self.assertEqual(
                action.build_command(), ["cargo", "lambda", "build", "--release", *flag, "--bin", "store-orders"]
            )


def glibc_versions(binary: Path) -> set[tuple[int, ...]]:
    out = subprocess.run(["readelf", "--version-info", "--wide", str(binary)], check=True, capture_output=True, text=True).stdout
    return {tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out)}


@unittest.skipUnless(os.environ.get("ORDERFLOW_SAM_BUILD_DIR"), "ORDERFLOW_SAM_BUILD_DIR is not set (scripts/test-aws runs sam build)")
class SamBuildOutput(unittest.TestCase):
    def test_sam_build_made_both_bootstraps_for_provided_al2023(self):
        build = Path(os.environ["ORDERFLOW_SAM_BUILD_DIR"])
        for logical in resources(load_template(), "AWS::Serverless::Function"):
            bootstrap = build / logical / "bootstrap"
            self.assertTrue(bootstrap.is_file(), f"sam build made no {bootstrap}")
            self.assertTrue(os.access(bootstrap, os.X_OK), bootstrap)
            self.assertEqual(bootstrap.read_bytes()[:4], b"\x7fELF", bootstrap)
            newest = max(glibc_versions(bootstrap))
            self.assertLessEqual(newest, AL2023_GLIBC, f"{bootstrap} needs glibc {newest}, newer than Amazon Linux 2023's")
        built = (build / "template.yaml").read_text()
        self.assertIn("CodeUri: StoreOrdersFunction", built)
        self.assertIn("CodeUri: PublishOrdersFunction", built)


if __name__ == "__main__":
    unittest.main()
