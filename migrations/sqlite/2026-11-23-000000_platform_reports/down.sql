DROP TABLE platform_reports;
