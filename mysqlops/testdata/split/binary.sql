-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
USE `shop`;
INSERT INTO `blobs` VALUES (1,_binary 'ÿþ;€\\'),(2,_binary '\0\'\n;--'),(3,'æ—¥æœ¬ ; ðŸ˜€');
INSERT INTO `blobs` VALUES (4,0x3B27223B);
-- Dump completed on 2026-11-25 18:19:37
