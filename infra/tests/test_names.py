"""No name this stack builds exceeds an AWS limit, whatever NamePrefix the deploy accepts.

IAM role names: 64 characters
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
Lambda function names: 64
https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html
SQS queue names: 80
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
SNS topic names: 256; DynamoDB table names: 255; log group names: 512; alarm and dashboard
names: 255
https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html
"""

import re
import unittest

from .support import load_template

LIMITS = {
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::Serverless::Function", "FunctionName"): 64,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::SNS::Topic", "TopicName"): 256,
    ("AWS::DynamoDB::Table", "TableName"): 255,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): 255,
    ("AWS::ApiGateway::RestApi", "Name"): 1024,
}


def rendered(value, prefix: str) -> str:
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    assert isinstance(text, str), value
    # The optional downstream queue's name part, as long as its parameter allows.
    pattern = load_template()["Parameters"]["DownstreamQueueName"]["AllowedPattern"]
    downstream = "d" * int(re.fullmatch(r"\^\[A-Za-z0-9_-\]\{0,(\d+)\}\$", pattern).group(1))
    text = text.replace("${DownstreamQueueName}", downstream)
    return re.sub(r"\$\{NamePrefix\}", prefix, text)


class Names(unittest.TestCase):
    def test_the_longest_prefix_the_parameter_allows_keeps_every_name_within_its_limit(self):
        template = load_template()
        parameter = template["Parameters"]["NamePrefix"]
        longest = "a" * parameter["MaxLength"]
        self.assertRegex(longest, parameter["AllowedPattern"])
        checked = 0
        for logical, resource in template["Resources"].items():
            for (kind, prop), limit in LIMITS.items():
                if resource["Type"] == kind and prop in resource["Properties"]:
                    name = rendered(resource["Properties"][prop], longest)
                    self.assertLessEqual(len(name), limit, f"{logical} {prop} {name!r}")
                    checked += 1
        self.assertGreaterEqual(checked, 15)
        # One character more and some name would overflow: the bound is the tightest one.
        one_more = "a" * (parameter["MaxLength"] + 1)
        roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
        self.assertTrue(any(len(rendered(r["Properties"]["RoleName"], one_more)) > 64 for r in roles))

    def test_every_name_is_built_from_the_prefix_not_the_unbounded_stack_name(self):
        text = str(load_template()["Resources"])
        self.assertNotIn("AWS::StackName", text, "stack names run to 128 characters")


if __name__ == "__main__":
    unittest.main()
