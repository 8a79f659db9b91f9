"""AWS adapters: DynamoDB, S3, SQS and SNS behind the four ports. boto3 lives only here."""
