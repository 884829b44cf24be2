-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
USE `shop`;
INSERT INTO `t` VALUES (1,'a'),(2,'b');
INSERT INTO `t` VALUES (3,'c'),(4,'d;
