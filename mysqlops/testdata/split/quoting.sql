-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Server version	10.11.19-MariaDB-log
USE `we``ird`;
INSERT INTO `t` VALUES (1,'it''s; here','a\'b;c',"dq \" ; --",'back\\'),(2,'-- Table structure for table `x`;\n','/* not a comment ;',NULL);
INSERT INTO `we``ird`.`t` VALUES (3,'line one;
line two; -- still a string
# and this',x'00FF3B',_binary 'bin\0\Z;\\');
SELECT 1 /* a comment; with a semicolon */ , 2; SELECT 3; -- trailing comment
SELECT 4 # hash comment ; not the end
;
SELECT '--x', "#y", `z;`;
--notacomment is an expression: 5--3
SELECT 5--3;
/* a whole comment line; it stays with the next statement */
SELECT 6;
-- Dump completed on 2026-11-25 20:12:24
