"""A hostile or careless client's SNS Query requests: every answer must still be XML a strict
parser reads (https://www.w3.org/TR/xml/#charsets; botocore and the SDKs parse it so)."""

import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import REGION, Server, aws_client

NS = "{http://sns.amazonaws.com/doc/2010-03-31/}"


@pytest.fixture(scope="module")
def sns_server():
    s = Server()
    yield s
    s.stop()


def signed_post(server, form):
    """A Query request signed with SigV4 as botocore signs it; the raw status and body."""
    data = urllib.parse.urlencode(form).encode()
    request = AWSRequest(method="POST", url=server.url + "/", data=data,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials("anything", "anything"), "sns", REGION).add_auth(request)
    req = urllib.request.Request(server.url + "/", data=data, method="POST",
                                 headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_an_error_echoing_a_control_character_is_still_well_formed_xml(sns_server):
    # XML 1.0 cannot carry U+0001 even as a character reference; the answer once held it raw.
    status, body = signed_post(sns_server, {"Action": "Foo\x01", "Version": "2010-03-31"})
    assert status == 400
    root = ET.fromstring(body)
    assert root.find(f"{NS}Error/{NS}Code").text == "InvalidAction"
    assert "Foo\ufffd" in root.find(f"{NS}Error/{NS}Message").text


def test_a_batch_whose_attributes_take_it_past_256_kib_is_refused(sns_server):
    # API_PublishBatch.html: "The combined size of all messages in the batch, including each
    # message's body and attributes, must not exceed" 256 KiB. Only the bodies were counted.
    sns = aws_client(sns_server, "sns")
    topic = sns.list_topics()["Topics"][0]["TopicArn"]
    entries = [{"Id": str(i), "Message": "m",
                "MessageAttributes": {"pad": {"DataType": "String", "StringValue": "x" * 30000}}}
               for i in range(10)]
    with pytest.raises(ClientError) as e:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert e.value.response["Error"]["Code"] == "BatchRequestTooLong"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    entries = entries[:8]  # 8 x 30 KB fits
    assert len(sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)["Successful"]) == 8


def test_a_number_attribute_past_38_digits_or_1e126_is_refused(sns_server):
    # https://docs.aws.amazon.com/sns/latest/dg/sns-message-attributes.html: a Number "can
    # have up to 38 digits of precision, and it can be between 10^-128 and 10^+126". Anything
    # a double could hold (1E300) was accepted.
    sns = aws_client(sns_server, "sns")
    topic = sns.list_topics()["Topics"][0]["TopicArn"]
    for bad in ("1E300", "1" * 39, "1E-129"):
        with pytest.raises(ClientError) as e:
            sns.publish(TopicArn=topic, Message="m",
                        MessageAttributes={"n": {"DataType": "Number", "StringValue": bad}})
        assert e.value.response["Error"]["Code"] == "ParameterValueInvalid", bad
    assert sns.publish(TopicArn=topic, Message="m",
                       MessageAttributes={"n": {"DataType": "Number", "StringValue": "1E126"}})["MessageId"]
