"""The AWS deployment tells someone when it fails: alarms to an e-mail, a dashboard, API
access logs, X-Ray traces, and Lambda's own REPORT lines.

Alarms on SQS ApproximateNumberOfMessagesVisible, Lambda Errors/Throttles/IteratorAge and
API Gateway 5XXError/Latency (dimensions ApiName and Stage):
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-metrics-and-dimensions.html
Access logs need the account's API Gateway CloudWatch role (AmazonAPIGatewayPushToCloudWatchLogs):
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
CloudWatch cannot publish alarms to a topic encrypted with the AWS managed SNS key:
https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
Lambda's START/END/REPORT lines are INFO system logs; SystemLogLevel WARN drops them:
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html
"""

import json
import re
import unittest

from .support import load_template, resources


class Operations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.r = cls.t["Resources"]
        cls.alarms = resources(cls.t, "AWS::CloudWatch::Alarm")

    def alarm_on(self, namespace: str, metric: str, dimension_value) -> dict:
        for alarm in self.alarms.values():
            p = alarm["Properties"]
            values = [d["Value"] for d in p.get("Dimensions", [])]
            if p["Namespace"] == namespace and p["MetricName"] == metric and dimension_value in values:
                return p
        self.fail(f"no alarm on {namespace} {metric} {dimension_value}")

    def test_every_failure_path_has_an_alarm_that_mails_the_alarm_email(self):
        for queue in ("OrdersDeadLetterQueue", "StreamFailureQueue", "HeldBackQueue"):
            p = self.alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [queue, "QueueName"]})
            self.assertEqual((p["Threshold"], p["ComparisonOperator"]), (0, "GreaterThanThreshold"), queue)
        self.alarm_on("AWS/Lambda", "IteratorAge", {"Ref": "PublishOrdersFunction"})
        for fn in ("StoreOrdersFunction", "PublishOrdersFunction"):
            for metric in ("Errors", "Throttles"):
                self.alarm_on("AWS/Lambda", metric, {"Ref": fn})
        api = self.r["OrdersApi"]["Properties"]["Name"]
        for metric in ("5XXError", "Latency"):
            p = self.alarm_on("AWS/ApiGateway", metric, api)
            self.assertIn({"Name": "Stage", "Value": {"Ref": "StageName"}}, p["Dimensions"])
        for name, alarm in self.alarms.items():
            self.assertEqual(alarm["Properties"]["AlarmActions"], [{"Ref": "AlarmTopic"}], name)
        subscription = self.r["AlarmEmailSubscription"]["Properties"]
        self.assertEqual((subscription["Protocol"], subscription["Endpoint"]), ("email", {"Ref": "AlarmEmail"}))
        self.assertNotIn("KmsMasterKeyId", self.r["AlarmTopic"]["Properties"], "CloudWatch could not publish")

    def test_the_dashboard_shows_the_api_the_queues_and_both_functions(self):
        (dashboard,) = resources(self.t, "AWS::CloudWatch::Dashboard").values()
        body, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        for name in ("OrdersQueue.QueueName", "OrdersDeadLetterQueue.QueueName", "StreamFailureQueue.QueueName",
                     "HeldBackQueue.QueueName", "StoreOrdersFunction", "PublishOrdersFunction", "Api"):
            self.assertIn("${" + name + "}", body)
        rendered = re.sub(r"\$\{[^}]+\}", "x", body)
        self.assertGreaterEqual(len(json.loads(rendered)["widgets"]), 5)

    def test_the_stage_writes_json_access_logs_and_traces_with_x_ray(self):
        stage = self.r["ApiStage"]
        p = stage["Properties"]
        self.assertTrue(p["TracingEnabled"])
        self.assertEqual(p["AccessLogSetting"]["DestinationArn"], {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]})
        line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "v", p["AccessLogSetting"]["Format"]))
        self.assertIn("requestId", line)
        self.assertEqual(stage.get("DependsOn"), "ApiGatewayAccount")
        account = self.r["ApiGatewayAccount"]["Properties"]
        self.assertEqual(account["CloudWatchRoleArn"], {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]})
        skipped = {s["id"] for s in stage.get("Metadata", {}).get("checkov", {}).get("skip", [])}
        self.assertFalse(skipped & {"CKV_AWS_73", "CKV_AWS_76"}, "tracing and access logs are on now")

    def test_both_functions_trace_and_keep_lambdas_report_lines(self):
        self.assertEqual(self.t["Globals"]["Function"]["Tracing"], "Active")
        for name, fn in resources(self.t, "AWS::Serverless::Function").items():
            self.assertEqual(fn["Properties"]["LoggingConfig"]["SystemLogLevel"], "INFO", name)


if __name__ == "__main__":
    unittest.main()
