//! The one topic, `POC-Topic`: `ListTopics`, `GetTopicAttributes`, and which topic ARNs a
//! request may name. <https://docs.aws.amazon.com/sns/latest/api/API_GetTopicAttributes.html>

use orderflow_embedded::topic::SubscriptionStatus;
use serde_json::json;

use super::errors;
use super::request::Params;
use super::xml::Xml;
use super::{Answer, Sns};
use crate::awsapi::{AwsError, TOPIC_NAME};

impl Sns<'_> {
    /// Accepts our topic's ARN. Another topic of this account and region does not exist
    /// (`NotFound`); one of another account is not ours to use (`AuthorizationError`, as
    /// SNS answers without a cross-account policy); anything else is not a topic ARN here.
    pub(super) fn check_topic(&self, arn: &str, action: &str) -> Result<(), AwsError> {
        let ours = self.settings().topic_arn();
        if arn == ours {
            return Ok(());
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", "aws", "sns", region, account, name]
                if !name.is_empty() && !name.contains(':') =>
            {
                if *region != self.settings().region {
                    Err(errors::invalid_parameter(format!(
                        "Invalid parameter: TopicArn Reason: the topic is in region {region}; this server is region {}",
                        self.settings().region
                    )))
                } else if *account != self.settings().account_id {
                    Err(errors::authorization_error(format!(
                        "User: arn:aws:iam::{}:root is not authorized to perform: SNS:{action} on resource: {arn}",
                        self.settings().account_id
                    )))
                } else {
                    Err(errors::not_found("Topic does not exist"))
                }
            }
            _ => Err(errors::invalid_parameter("Invalid parameter: TopicArn")),
        }
    }

    /// SNS's `CreateTopic` is idempotent: for the existing topic's name it answers that
    /// topic's ARN, which is how much SDK code finds a topic at start-up. This server has
    /// one topic, so any other name, or attributes to set, are refused.
    /// <https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html>
    pub(super) async fn create_topic(&self, params: &Params) -> Answer {
        let name = params.required("Name")?;
        if name != TOPIC_NAME {
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: Name Reason: orderflow serve has one topic, {TOPIC_NAME}, and creates no other"
            )));
        }
        if !params.string_map("Attributes").is_empty() || !params.members("Tags").is_empty() {
            return Err(errors::invalid_parameter(
                "Invalid parameter: Attributes Reason: the attributes and tags of orderflow serve's topic are fixed",
            ));
        }
        let arn = self.settings().topic_arn();
        self.answer("CreateTopic", &|x: &mut Xml| {
            x.text("TopicArn", &arn);
        })
    }

    pub(super) async fn list_topics(&self, params: &Params) -> Answer {
        if params.get("NextToken").is_some() {
            // One topic, so there is never a second page.
            return Err(errors::invalid_parameter("Invalid parameter: NextToken"));
        }
        let arn = self.settings().topic_arn();
        self.answer("ListTopics", &|x: &mut Xml| {
            x.open("Topics")
                .open("member")
                .text("TopicArn", &arn)
                .close("member")
                .close("Topics");
        })
    }

    pub(super) async fn get_topic_attributes(&self, params: &Params) -> Answer {
        let arn = params.required("TopicArn")?;
        self.check_topic(arn, "GetTopicAttributes")?;
        let subs = self
            .state
            .engine
            .topic()
            .list()
            .await
            .map_err(AwsError::internal)?;
        let confirmed = subs
            .iter()
            .filter(|s| s.status == SubscriptionStatus::Confirmed)
            .count();
        let pending = (subs.len() - confirmed).to_string();
        let confirmed = confirmed.to_string();
        let account = self.settings().account_id.clone();
        let topic = self.settings().topic_arn();
        // The policy SNS gives a new topic: the owner account may use it.
        let policy = json!({
            "Version": "2008-10-17",
            "Id": "__default_policy_ID",
            "Statement": [{
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
                           "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe",
                           "SNS:ListSubscriptionsByTopic", "SNS:Publish"],
                "Resource": topic,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account}},
            }],
        })
        .to_string();
        self.answer("GetTopicAttributes", &|x: &mut Xml| {
            x.map(
                "Attributes",
                [
                    ("TopicArn", topic.as_str()),
                    ("Owner", account.as_str()),
                    ("DisplayName", ""),
                    ("Policy", policy.as_str()),
                    ("SubscriptionsConfirmed", confirmed.as_str()),
                    ("SubscriptionsPending", pending.as_str()),
                    ("SubscriptionsDeleted", "0"),
                ],
            );
        })
    }
}
